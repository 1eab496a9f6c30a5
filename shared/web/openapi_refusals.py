"""Every refusal a route can give, written into a service's OpenAPI document in the shape the services answer with.

So a client (and schemathesis, in tests/fuzz) knows every answer it can get: 401/403 where the route policy
(`shared.web.policy`) protects a route, 413/415/422 from the request limits and validation, 404/409/503 otherwise.
The policy is passed in as a lookup rather than imported, so that `shared.web.policy.install` can use this module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from shared.web.auth import SAFE_METHODS

# (method, path) -> whether the route policy declares the route public; None where the policy has no rule for it.
PublicLookup = Callable[[str, str], bool | None]

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


def refusals_of(public: bool | None, method: str, path: str, operation: dict[str, Any]) -> list[str]:
    """The error statuses an operation can answer, from who may call it and what it takes.

    `public` is the route policy's word on the route, None where it has no rule (then the operation's own
    security requirement decides)."""
    protected = not public if public is not None else bool(operation.get("security"))
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


def document_refusals(document: dict[str, Any], is_public: PublicLookup) -> dict[str, Any]:
    """Add the refusals every route can give to each operation of an OpenAPI document, in the shape they take.

    Routes keep the refusals they document themselves (with their own descriptions); an error response they
    declare without a body, or with FastAPI's `{"detail"}` validation shape, gets the services' error body.
    """
    document.setdefault("components", {}).setdefault("schemas", {})[ERROR_SCHEMA_NAME] = ERROR_SCHEMA
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            public = is_public(method.upper(), path)
            for status in refusals_of(public, method.upper(), path, operation):
                responses.setdefault(status, _error_response(REFUSALS[status]))
            if not public:  # public probes answer in their own shape (health: not ready)
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
