"""The declared route policy (shared/web/policy.py) covers every route, and every running service honours it.

Two halves. Without any service running: every route of every service app has exactly one rule, and no rule is
left over from a removed route, so adding a route without deciding who may call it fails here. Then, per service,
on the real broker and a real database: each route is called without a token and with a token of every role, and
the answer must be what the policy says: 401 without a token, 403 for a role not admitted, and for an admitted
role anything but 401/403/5xx (404 or 422 are expected: the ids and bodies are made up).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.settings import Settings
from shared.web import policy
from shared.web.auth import READ_ONLY_ROLES, SAFE_METHODS, Role
from shared.web.policy import POLICY, SERVICES, Rule, roles, routes_of
from shared.web.policy_doc import MARKER, SECURITY_DOC, render_security_doc
from tests.fixtures.databases import sqlite_url
from tests.harness import build_app, running_service, service_settings
from tests.security.routes import Reply, call, concrete_path, probing_token, service_routes

CALLERS: tuple[Role | None, ...] = (None, *Role)  # None: no token at all
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# Readiness may honestly say "not ready" (503); nothing else an admitted caller does may end in a 5xx.
MAY_BE_UNAVAILABLE = frozenset({"/health/ready"})


# --- the policy covers the code ------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_has_a_rule_and_every_rule_a_route(service: str) -> None:
    served = service_routes(service)
    declared = {(method, path) for (_service, method, path), _rule in routes_of(service)}
    missing = sorted(served - declared)
    assert not missing, (
        f"{service} serves routes the policy does not cover: {missing}. Decide who may call each and add a rule "
        f'to shared/web/policy.py (e.g. "GET /things": roles(Role.operator)), then run `python -m shared.web.policy`'
    )
    assert not sorted(declared - served), f"shared/web/policy.py has rules for routes {service} no longer serves"


def test_policy_refuses_a_write_open_to_auditors_or_to_everyone() -> None:
    key = ("pledge", "POST", "/pledges")
    with pytest.raises(ValueError, match="read-only role"):
        policy.check_policy({key: roles(Role.auditor)})
    with pytest.raises(ValueError, match="cannot be public"):
        policy.check_policy({key: policy.public("oops")})
    with pytest.raises(ValueError, match="must admit admin"):
        policy.check_policy({key: Rule(roles=frozenset({Role.donor}))})


def test_auditors_read_everything_and_write_nothing() -> None:
    for (service, method, path), rule in POLICY.items():
        if method in SAFE_METHODS:
            assert rule.admits(Role.auditor), f"auditors should be able to read {method} {path} of {service}"
        else:
            assert not rule.roles & READ_ONLY_ROLES, f"{method} {path} of {service} admits a read-only role"


def test_admin_may_call_every_route() -> None:
    assert all(rule.admits(Role.admin) for rule in POLICY.values())


@pytest.mark.parametrize("service", SERVICES)
def test_the_openapi_document_names_every_refusal_in_the_error_shape(service: str) -> None:
    """What a client generated from /openapi.json must know: who may be refused, and what a refusal looks like."""
    document = build_app(service, Settings(service=service)).openapi()
    assert "HTTPValidationError" not in json.dumps(document["paths"]), "FastAPI's {detail} shape is not ours"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            rule = POLICY[(service, method.upper(), path)]
            statuses = set(operation["responses"])
            assert rule.public or {"401", "403"} <= statuses, f"{method} {path} of {service}"
            if "requestBody" in operation:
                assert {"413", "415", "422"} <= statuses, f"{method} {path} of {service}"
            for status, response in operation["responses"].items():
                if status >= "400" and not rule.public:
                    assert "application/json" in response.get("content", {}), f"{status} of {method} {path}"


def test_security_doc_shows_the_current_policy() -> None:
    doc = Path(SECURITY_DOC).read_text(encoding="utf-8")
    assert MARKER in doc, "docs/security.md lost its generated policy section"
    assert render_security_doc(doc) == doc, "docs/security.md is stale: run `python -m shared.web.policy`"


# --- the services honour the policy --------------------------------------------------------------------------


def verdict(rule: Rule, caller: Role | None, method: str, path: str, reply: Reply) -> str | None:
    """What is wrong with this reply under the rule, or None if it is what the policy promises."""
    who = caller.value if caller else "no token"
    if rule.admits(caller):
        if reply.status in (401, 403):
            return f"{who} was refused ({reply.status}) but the policy admits it"
        if reply.status >= 500 and not (reply.status == 503 and path in MAY_BE_UNAVAILABLE):
            return f"{who} got a server error {reply.status}: {reply.body[:200]!r}"
        return None
    expected, code = (401, "unauthenticated") if caller is None else (403, "forbidden")
    if reply.status != expected or reply.error_code() != code:
        return f"{who} got {reply.status} {reply.body[:160]!r}; the policy says {expected} {code}"
    if caller is None and reply.headers.get("www-authenticate") != "Bearer":
        return "a 401 without the `WWW-Authenticate: Bearer` challenge"
    return None


async def probe_route(service_settings_: Settings, app: object, method: str, path: str) -> list[str]:
    rule = POLICY[(service_settings_.service, method, path)]
    url = concrete_path(path)
    body = b"{}" if method in WRITE_METHODS else b""
    problems = []
    for caller in CALLERS:
        headers = {"content-type": "application/json"} if body else {}
        if caller is not None:
            headers["authorization"] = f"Bearer {probing_token(caller, service_settings_)}"
        reply = await call(app, method, url, headers=headers, body=body)  # type: ignore[arg-type]
        if (problem := verdict(rule, caller, method, path, reply)) is not None:
            problems.append(f"{method} {path}: {problem}")
    return problems


@pytest.mark.kafka
@pytest.mark.parametrize("service", SERVICES)
async def test_each_caller_gets_exactly_what_the_policy_says(
    service: str, tmp_path: Path, topic_prefix: str, kafka_bootstrap: str
) -> None:
    settings = service_settings(service, sqlite_url(tmp_path), topic_prefix, kafka_bootstrap)
    async with running_service(service, settings, wait_ready=service != "audit") as handle:
        problems: list[str] = []
        for (_service, method, path), _rule in routes_of(service):
            problems += await probe_route(settings, handle.app, method, path)
    assert not problems, "\n".join(problems)
