"""Wires the read-only audit service: settings, auth, health and the audit routes.

It does not use the shared app factory on purpose: that factory runs migrations and starts a Kafka producer and
relay, and the auditor has no database and must never write to Kafka.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from services.audit import api
from shared.broker.probe import describe
from shared.settings import Settings, get_settings
from shared.web.auth import get_auth_settings, install_auth_error_handler
from shared.web.errors import error_body, on_validation_error
from shared.web.policy import install as install_policy

health = APIRouter(prefix="/health", tags=["health"])


@health.get("/live", summary="The process is running.")
async def live() -> dict[str, str]:
    return {"status": "live"}


@health.get("/ready", summary="Kafka answers, so an audit can run.")
async def ready(request: Request) -> JSONResponse:
    settings: Settings = request.app.state.settings
    kafka_ok = await describe(settings.kafka_bootstrap.split(",")[0].strip()) is not None
    body = {"status": "ready" if kafka_ok else "not_ready", "kafka": kafka_ok}
    return JSONResponse(body, status_code=200 if kafka_ok else 503)


async def on_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    body = error_body("log_unavailable", f"the event log cannot be read right now; retry shortly ({exc})")
    return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})


def create(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="aidtrail audit",
        description="Read-only replay of the event log: reconciliation, chain verification, EPCIS export.",
        version="1.0.0",
    )
    app.state.settings = settings
    install_policy(app, "audit")  # the OpenAPI document names every refusal; bodies are held to the limits
    app.dependency_overrides[get_auth_settings] = lambda: settings
    install_auth_error_handler(app)
    app.add_exception_handler(RequestValidationError, on_validation_error)  # 422s in the {"error": ...} shape
    app.add_exception_handler(api.AuditUnavailable, on_unavailable)
    app.include_router(health)
    app.include_router(api.router)
    return app
