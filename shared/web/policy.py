"""The declared route policy: for every route of every service, who may call it and how far their scope reaches.

Each route enforces its own rule where it is defined (`require_roles`, `ensure_*_access` in `shared.web.auth`).
This module states the same policy once more, in one place, on purpose:

* a reviewer reads the whole policy in one table instead of hunting through five route modules;
* `docs/security.md` is generated from it, so the documentation cannot drift from the code;
* `tests/security/test_route_policy.py` enumerates every route of every service app and fails when one has no
  rule here, then calls each route with a token of every role and checks the service does exactly what this
  table says. A new route without a rule, or a rule the code does not honour, fails the build;
* `install(app, service)` puts the request limits (`shared.web.limits`) in front of a service's routes and writes
  every refusal a route can give (401/403 as this policy says, 413/415/422 from the limits and validation,
  404/409/503) into its OpenAPI document, in the `{"error": ...}` shape the services answer with, so a client
  (and schemathesis, in tests/fuzz) knows every answer it can get.

Vocabulary
----------
* `public`: no token needed (health, metrics, the API and event contracts). Declared explicitly, never implied.
* `roles`: the roles a route admits; `admin` is always among them because `require_roles` lets admin through.
  A route open to "every role" still needs a valid token (401 without one).
* `scope`: the dimensions along which the handler narrows an admitted role to part of the world:
  `site` (operators and dispatchers act only on their own sites), `recipient` (recipient staff act only for
  their own recipient), `donor` (donors see and change only their own donor record, pledges and batches).
* Auditors are read-only: no rule for a method other than GET/HEAD/OPTIONS may list them (checked at import).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from fastapi import FastAPI

from shared.web.auth import ALL_ROLES, READ_ONLY_ROLES, SAFE_METHODS, Role
from shared.web.limits import RequestLimitsMiddleware
from shared.web.openapi_refusals import PublicLookup, document_refusals

SERVICES: Final = ("pledge", "warehouse", "dispatch", "recipient", "audit")
# Services built by `shared.web.app_factory`; the auditor wires its own app (no database, no Kafka producer).
FACTORY_SERVICES: Final = ("pledge", "warehouse", "dispatch", "recipient")

RouteKey = tuple[str, str, str]  # (service, HTTP method, path template as FastAPI declares it)


class Scope(StrEnum):
    SITE = "site"
    RECIPIENT = "recipient"
    DONOR = "donor"


# How the generated table names each scope: "own sites" applies to operators and dispatchers, "own recipient" to
# recipient staff, "own donor" to donors; every other role is unaffected by it.
SCOPE_NAMES: Final = {Scope.SITE: "sites", Scope.RECIPIENT: "recipient", Scope.DONOR: "donor"}


@dataclass(frozen=True, slots=True)
class Rule:
    """Who may call one route. `public` routes need no token; otherwise a valid token of one of `roles`."""

    roles: frozenset[Role]
    public: bool = False
    scope: frozenset[Scope] = frozenset()
    note: str = ""

    def admits(self, role: Role | None) -> bool:
        """`None` is a caller without a token."""
        if self.public:
            return True
        return role is not None and role in self.roles


def public(note: str) -> Rule:
    return Rule(roles=ALL_ROLES, public=True, note=note)


def roles(*admitted: Role, scope: Iterable[Scope] = (), note: str = "") -> Rule:
    """Admin is added here for the same reason `require_roles` admits it: admin may do everything."""
    return Rule(roles=frozenset(admitted) | {Role.admin}, scope=frozenset(scope), note=note)


def every_role(*, scope: Iterable[Scope] = (), note: str = "") -> Rule:
    return Rule(roles=ALL_ROLES, scope=frozenset(scope), note=note)


# --- the policy --------------------------------------------------------------------------------------------

DOCS_ROUTES: Final = ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")
OPERATOR_WRITE = roles(Role.operator, scope=[Scope.SITE])
DISPATCHER_WRITE = roles(Role.dispatcher, scope=[Scope.SITE])
DONOR_WRITE = roles(Role.donor, scope=[Scope.DONOR])
DONOR_READ = roles(Role.donor, Role.operator, Role.auditor, scope=[Scope.DONOR])
RECIPIENT_WRITE = roles(Role.recipient_staff, scope=[Scope.RECIPIENT])
ADMIN_ONLY = roles()
AUDIT_READ = roles(Role.auditor)
READ_ANY = every_role()
# Work queues that name every donor's batches; a donor follows their own at the pledge service instead.
STAFF_READ = roles(Role.operator, Role.dispatcher, Role.recipient_staff, Role.auditor, note="not donors")


def _common(service: str) -> dict[RouteKey, Rule]:
    """What every service serves: the API description, health and, for factory-built services, the rest."""
    rules: dict[RouteKey, Rule] = {}
    for path in DOCS_ROUTES:
        for method in ("GET", "HEAD"):
            rules[(service, method, path)] = public("the API description; says what exists, never what is stored")
    rules[(service, "GET", "/health/live")] = public("liveness probe for the orchestrator")
    rules[(service, "GET", "/health/ready")] = public("readiness probe: database and Kafka reachable")
    if service in FACTORY_SERVICES:
        rules[(service, "GET", "/metrics")] = public("Prometheus scrape: counts and lags, no business data")
        rules[(service, "GET", "/asyncapi.json")] = public("the event contract, like /openapi.json")
        rules[(service, "GET", "/asyncapi.yaml")] = public("the event contract, like /openapi.json")
        rules.update(_dead_letters(service))
        batch_read = every_role(scope=[Scope.DONOR], note="a donor sees only batches of their own pledges")
        for path in ("/batches", "/batches/{batch_id}", "/batches/{batch_id}/events"):
            rules[(service, "GET", path)] = batch_read
    return rules


def _dead_letters(service: str) -> dict[RouteKey, Rule]:
    """Parked (dead-letter) events can hold any event's data: auditors may look, only an admin may repair."""
    look = roles(Role.auditor, note="parked events and relay status, for operations")
    repair = roles(note="repairing the projection is an administrative act, recorded in the parked event's history")
    return {
        (service, "GET", "/admin/parked"): look,
        (service, "GET", "/admin/parked/{parked_id}"): look,
        (service, "GET", "/admin/relay"): look,
        (service, "POST", "/admin/parked/{parked_id}/fix"): repair,
        (service, "POST", "/admin/parked/replay"): repair,
        (service, "POST", "/admin/parked/{parked_id}/discard"): repair,
    }


def _pledge() -> dict[str, Rule]:
    return {
        "POST /donors": DONOR_WRITE,
        "GET /donors": roles(
            Role.donor, Role.operator, Role.auditor, scope=[Scope.DONOR], note="a donor sees only their own record"
        ),
        "GET /donors/{donor_id}": DONOR_READ,
        "GET /donors/{donor_id}/batches": DONOR_READ,
        "POST /pledges": DONOR_WRITE,
        "GET /pledges": roles(
            Role.donor, Role.operator, Role.auditor, scope=[Scope.DONOR], note="a donor sees only their own pledges"
        ),
        "GET /pledges/{pledge_id}": DONOR_READ,
        "PATCH /pledges/{pledge_id}/lines/{line_no}": DONOR_WRITE,
        "POST /pledges/{pledge_id}/cancel": DONOR_WRITE,
    }


def _warehouse() -> dict[str, Rule]:
    return {
        "POST /sites": roles(note="registering a warehouse or relay hub is an administrative act"),
        "GET /sites": READ_ANY,
        "GET /sites/{site_id}": READ_ANY,
        "GET /sites/{site_id}/expected-intake": STAFF_READ,
        "GET /stock": READ_ANY,
        "POST /batches/{batch_id}/receive": OPERATOR_WRITE,
        "POST /batches/{batch_id}/inspect": OPERATOR_WRITE,
        "POST /batches/{batch_id}/quarantine/resolve": OPERATOR_WRITE,
        "POST /batches/{batch_id}/write-off": OPERATOR_WRITE,
        "POST /batches/{batch_id}/redesignate": roles(note="admin, as the approver of a change of designation"),
        "POST /batches/{batch_id}/allocate": OPERATOR_WRITE,
        "POST /allocations/run": roles(
            Role.operator, scope=[Scope.SITE], note="an operator's run covers only their own sites"
        ),
        "POST /allocations/{allocation_id}/pick": OPERATOR_WRITE,
        "GET /allocations": READ_ANY,
        "GET /needs": READ_ANY,
    }


def _dispatch() -> dict[str, Rule]:
    movement = roles(Role.dispatcher, scope=[Scope.SITE], note="acting where the goods are (or arrive)")
    return {
        "GET /ready-to-ship": STAFF_READ,
        "GET /shipments": READ_ANY,
        "GET /shipments/{shipment_id}": READ_ANY,
        "POST /shipments": roles(Role.dispatcher, scope=[Scope.SITE], note="from one of the dispatcher's sites"),
        "POST /shipments/{shipment_id}/dispatch": movement,
        "POST /shipments/{shipment_id}/arrive": movement,
        "POST /shipments/{shipment_id}/handover": movement,
        "POST /shipments/{shipment_id}/depart": movement,
        "POST /shipments/{shipment_id}/deliver": movement,
        "POST /shipments/{shipment_id}/write-off": DISPATCHER_WRITE,
        "GET /events/stream": roles(
            Role.operator,
            Role.dispatcher,
            Role.recipient_staff,
            Role.auditor,
            scope=[Scope.RECIPIENT],
            note="Server-Sent Events; the token may also come as ?access_token=; not donors",
        ),
    }


def _recipient() -> dict[str, Rule]:
    return {
        "POST /recipients": ADMIN_ONLY,
        "GET /recipients": READ_ANY,
        "GET /recipients/{recipient_id}": READ_ANY,
        "GET /recipients/{recipient_id}/incoming": roles(
            Role.operator,
            Role.dispatcher,
            Role.recipient_staff,
            Role.auditor,
            scope=[Scope.RECIPIENT],
            note="not donors; recipient staff see only what comes to their own recipient",
        ),
        "POST /needs": roles(
            Role.recipient_staff, scope=[Scope.RECIPIENT], note="historical needs (past deadline): admin only"
        ),
        "GET /needs": READ_ANY,
        "GET /needs/{need_id}": READ_ANY,
        "POST /batches/{batch_id}/confirm-receipt": RECIPIENT_WRITE,
    }


def _audit() -> dict[str, Rule]:
    paths = ("/audit/report", "/audit/report.md", "/audit/report.html", "/audit/batches/{batch_id}")
    return {f"GET {path}": AUDIT_READ for path in (*paths, "/audit/verify", "/audit/epcis")}


_OWN_ROUTES: Final = {
    "pledge": _pledge,
    "warehouse": _warehouse,
    "dispatch": _dispatch,
    "recipient": _recipient,
    "audit": _audit,
}


def build_policy() -> dict[RouteKey, Rule]:
    policy: dict[RouteKey, Rule] = {}
    for service in SERVICES:
        policy.update(_common(service))
        for route, rule in _OWN_ROUTES[service]().items():
            method, path = route.split(" ", 1)
            policy[(service, method, path)] = rule
    check_policy(policy)
    return policy


def check_policy(policy: dict[RouteKey, Rule]) -> None:
    """Refuse a policy that breaks the invariants in the module docstring, at import time, not in production."""
    for (service, method, path), rule in policy.items():
        where = f"{method} {path} of {service}"
        if method not in SAFE_METHODS and rule.public:
            raise ValueError(f"{where} changes state and cannot be public")
        if method not in SAFE_METHODS and rule.roles & READ_ONLY_ROLES:
            raise ValueError(f"{where} changes state but admits a read-only role")
        if not rule.public and Role.admin not in rule.roles:
            raise ValueError(f"{where} must admit admin, as require_roles does")


POLICY: Final = build_policy()


def rule_for(service: str, method: str, path: str) -> Rule | None:
    return POLICY.get((service, method.upper(), path))


def routes_of(service: str) -> Iterator[tuple[RouteKey, Rule]]:
    return ((key, rule) for key, rule in POLICY.items() if key[0] == service)


def install(app: FastAPI, service: str) -> None:
    """Put the request limits in front of the app's routes and name every refusal in its OpenAPI document."""
    app.add_middleware(RequestLimitsMiddleware)
    build_document = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_refusals(build_document(), _public_lookup(service))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the document


def _public_lookup(service: str) -> PublicLookup:
    def is_public(method: str, path: str) -> bool | None:
        rule = rule_for(service, method, path)
        return rule.public if rule is not None else None

    return is_public


if __name__ == "__main__":  # pragma: no cover - a maintenance command
    from shared.web.policy_doc import SECURITY_DOC, update_security_doc

    print("updated" if update_security_doc() else "already current", SECURITY_DOC)
