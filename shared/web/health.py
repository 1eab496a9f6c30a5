"""Liveness says the process runs; readiness says it can do its job: database and Kafka both reachable."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from shared.web.runtime import ServiceRuntime, get_runtime

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", summary="The process is running.")
async def live() -> dict[str, str]:
    return {"status": "live"}


@router.get("/ready", summary="The database and Kafka are reachable.", responses={503: {"description": "Not ready"}})
async def ready(runtime: ServiceRuntime = Depends(get_runtime)) -> JSONResponse:
    database_ok = await runtime.database.ping()
    kafka_ok = await runtime.kafka_reachable()
    body = {"status": "ready" if database_ok and kafka_ok else "not_ready", "database": database_ok, "kafka": kafka_ok}
    return JSONResponse(body, status_code=200 if database_ok and kafka_ok else 503)
