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

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI

from shared.web.auth import ALL_ROLES, READ_ONLY_ROLES, SAFE_METHODS, Role
from shared.web.limits import RequestLimitsMiddleware

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


# --- the OpenAPI document names every refusal ---------------------------------------------------------------

ERROR_SCHEMA_NAME: Final = "ErrorResponse"
ERROR_SCHEMA: Final[dict[str, Any]] = {
    "title": ERROR_SCHEMA_NAME,
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Machine-readable, e.g. forbidden, not_found, conflict."},
                "message": {"type": "string", "description": "What is wrong and how to fix it."},
            },
            "additionalProperties": True,
        }
    },
}
REFUSALS: Final = {
    "401": "No token, or a token that is expired, badly signed or meant for another deployment.",
    "403": "The token's role may not call this route, or its scope (sites, recipient, donor) does not cover it.",
    "404": "Something the request names (in the path or the body) is not known here.",
    "409": "The current state does not allow this; the body names the state and what is allowed.",
    "413": "The body is larger than AIDTRAIL_MAX_BODY_BYTES.",
    "415": "The body is not sent as application/json.",
    "422": "The request is not valid, or breaks a rule; the body lists each problem and how to fix it.",
    "503": "The database (or the event log) cannot be reached right now; retry after Retry-After seconds.",
}
# FastAPI's own 422 describes `{"detail": [...]}`; the services answer `{"error": {...}}` (shared/web/errors.py).
FASTAPI_VALIDATION_REF: Final = "#/components/schemas/HTTPValidationError"
STATELESS_PATHS: Final = frozenset({"/health/live", "/asyncapi.json", "/asyncapi.yaml"})


def refusals_of(service: str, method: str, path: str, operation: dict[str, Any]) -> list[str]:
    """The error statuses an operation can answer, from who may call it and what it takes."""
    rule = rule_for(service, method, path)
    protected = not rule.public if rule is not None else bool(operation.get("security"))
    statuses = ["401", "403"] if protected else []
    if operation.get("parameters") or "requestBody" in operation:
        statuses.append("422")
    if "requestBody" in operation:
        statuses += ["413", "415"]
    if protected and ("{" in path or method not in SAFE_METHODS):
        statuses.append("404")
    if protected and method not in SAFE_METHODS:
        statuses.append("409")
    if path not in STATELESS_PATHS:
        statuses.append("503")
    return statuses


def _error_response(description: str) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def document_refusals(document: dict[str, Any], service: str) -> dict[str, Any]:
    """Add the refusals every route can give to each operation of an OpenAPI document, in the shape they take.

    Routes keep the refusals they document themselves (with their own descriptions); an error response they
    declare without a body, or with FastAPI's `{"detail"}` validation shape, gets the services' error body.
    """
    document.setdefault("components", {}).setdefault("schemas", {})[ERROR_SCHEMA_NAME] = ERROR_SCHEMA
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status in refusals_of(service, method.upper(), path, operation):
                responses.setdefault(status, _error_response(REFUSALS[status]))
            rule = rule_for(service, method, path)
            if rule is None or not rule.public:  # public probes answer in their own shape (health: not ready)
                _give_error_bodies(responses)
    return document


def _give_error_bodies(responses: dict[str, Any]) -> None:
    for status, response in responses.items():
        if status.startswith(("4", "5")) and _needs_error_body(response):
            response["content"] = _error_response("")["content"]


def _needs_error_body(response: dict[str, Any]) -> bool:
    content = response.get("content")
    if not content:
        return True
    schema = content.get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref") == FASTAPI_VALIDATION_REF)


def install(app: FastAPI, service: str) -> None:
    """Put the request limits in front of the app's routes and name every refusal in its OpenAPI document."""
    app.add_middleware(RequestLimitsMiddleware)
    build_document = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_refusals(build_document(), service)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the document


# --- documentation -----------------------------------------------------------------------------------------

MARKER: Final = "<!-- generated:policy -->"
END_MARKER: Final = "<!-- /generated:policy -->"
ROLE_ORDER: Final = tuple(Role)
SECURITY_DOC: Final = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def _cell(rule: Rule, role: Role | None) -> str:
    return "✓" if rule.admits(role) else ""


def _row(method: str, path: str, rule: Rule) -> str:
    cells = " | ".join(_cell(rule, role) for role in (None, *ROLE_ORDER))
    scope = ", ".join(f"own {SCOPE_NAMES[scope]}" for scope in sorted(rule.scope))
    return f"| {method} | `{path}` | {cells} | {scope} | {rule.note} |"


def policy_markdown() -> str:
    """One table per service: a row per route, a column per role; documentation routes are summarised once."""
    header = "| method | path | no token | " + " | ".join(role.value for role in ROLE_ORDER) + " | scoped to | note |"
    divider = "|---|---|---|" + "---|" * len(ROLE_ORDER) + "---|---|"
    sections: list[str] = []
    for service in SERVICES:
        rows = [f"### {service}", "", header, divider]
        rows += [
            _row(method, path, rule)
            for (_service, method, path), rule in routes_of(service)
            if path not in DOCS_ROUTES and method != "HEAD"
        ]
        sections.append("\n".join(rows))
    docs = ", ".join(f"`{path}`" for path in DOCS_ROUTES)
    sections.append(f"Every service also serves {docs} (GET and HEAD) publicly: they describe the API, not the data.")
    return "\n\n".join(sections)


def render_security_doc(text: str) -> str:
    """Replace the generated section of docs/security.md; the rest of the document is written by hand."""
    pattern = re.compile(re.escape(MARKER) + ".*?" + re.escape(END_MARKER), re.DOTALL)
    return pattern.sub(lambda _match: f"{MARKER}\n{policy_markdown()}\n{END_MARKER}", text)


def update_security_doc(path: Path = SECURITY_DOC) -> bool:
    """Rewrite the generated section; True if anything changed. Run `python -m shared.web.policy`."""
    current = path.read_text(encoding="utf-8")
    updated = render_security_doc(current)
    if updated != current:
        path.write_text(updated, encoding="utf-8")
    return updated != current


if __name__ == "__main__":  # pragma: no cover - a maintenance command
    print("updated" if update_security_doc() else "already current", SECURITY_DOC)
