"""Every refusal is JSON of one shape, `{"error": {"code", "message", ...}}`, and says how to fix it.

Domain refusals become 409/422 with the batch's current state and what is allowed; an unreachable database
becomes 503 with Retry-After, never a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared.domain.errors import DomainError
from shared.store.database import DatabaseUnavailable

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = "5"
UNAVAILABLE_SQLSTATES = ("08", "57P")


def error_body(code: str, message: str, **details: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **{k: v for k, v in details.items() if v is not None}}}


def _code_for(exc: DomainError) -> str:
    return {404: "not_found", 409: "conflict", 422: "rule_violation"}.get(exc.status_code, "refused")


async def on_domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    body = error_body(_code_for(exc), exc.message, current_state=exc.current_state, allowed=exc.allowed or None)
    return JSONResponse(body, status_code=exc.status_code)


async def on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"field": ".".join(str(part) for part in err["loc"]), "problem": err["msg"]} for err in exc.errors()[:20]
    ]
    summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:5])
    message = f"the request is not valid: {summary}. Fix these fields and send it again."
    return JSONResponse(error_body("invalid_request", message, problems=problems), status_code=422)


async def on_database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable", extra={"error": type(exc).__name__})
    body = error_body("database_unavailable", "the service's database is unreachable; retry shortly")
    return JSONResponse(body, status_code=503, headers={"Retry-After": RETRY_AFTER_SECONDS})


def _database_away(exc: DBAPIError) -> bool:
    """A lost or refused connection, whatever class the driver gives it. asyncpg's "the database system is shutting
    down" / "is starting up" (SQLSTATE 57P03, raised while connecting during a restart) reaches us as a plain
    DBAPIError, so the SQLSTATE class decides too: 08 (connection exception) and 57P (operator intervention)."""
    sqlstate = str(getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or "")
    return exc.connection_invalidated or isinstance(exc, OperationalError) or sqlstate.startswith(UNAVAILABLE_SQLSTATES)


async def on_dbapi_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DBAPIError)
    if _database_away(exc):
        return await on_database_unavailable(request, exc)
    raise exc


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(DatabaseUnavailable, on_database_unavailable)
    app.add_exception_handler(PoolTimeout, on_database_unavailable)
    app.add_exception_handler(ConnectionError, on_database_unavailable)
    app.add_exception_handler(OSError, on_database_unavailable)
    app.add_exception_handler(DBAPIError, on_dbapi_error)
