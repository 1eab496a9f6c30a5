"""The read-only audit API (port 8005): the same replay, checks and exports as the CLI, over HTTP.

Only auditor and admin tokens are admitted; every route is a GET, and the service never writes to Kafka.
A replay is CPU-bound, so it runs on a worker thread with its own event loop, keeping health checks and other
requests answered while a long replay is under way.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.background import BackgroundTask

from services.audit.batch_detail import batch_detail
from services.audit.epcis import export_epcis
from services.audit.reader import ReplayError
from services.audit.replay import AuditOptions, AuditResult, replay
from services.audit.report_html import render as render_html
from services.audit.report_json import chains_report, dumps, report
from services.audit.report_markdown import render as render_markdown
from shared.settings import Settings
from shared.web.auth import Role, require_roles

T = TypeVar("T")

router = APIRouter(prefix="/audit", tags=["audit"], dependencies=[Depends(require_roles(Role.auditor))])

AS_OF = Query(None, description="Replay up to this moment (ISO 8601; UTC if no offset). Default: the end of the log.")
NOW = Query(None, description="'Now' for the stuck-batch SLAs. Default: as_of, else the time of the request.")


class AuditUnavailable(Exception):
    """The log could not be read; rendered as 503 so a client retries instead of trusting a partial audit."""


def get_audit_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def off_loop(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return await asyncio.to_thread(asyncio.run, coro)
    except ReplayError as exc:
        raise AuditUnavailable(str(exc)) from exc


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _options(as_of: datetime | None, now: datetime | None = None, **extra: Any) -> AuditOptions:
    return AuditOptions(as_of=_utc(as_of), now=_utc(now), **extra)


async def _replay(settings: Settings, as_of: datetime | None, now: datetime | None) -> AuditResult:
    return await off_loop(replay(settings, options=_options(as_of, now)))


@router.get("/report", summary="Replay and check everything; the JSON report.")
async def get_report(
    as_of: datetime | None = AS_OF,
    now: datetime | None = NOW,
    batches: bool = Query(True, description="Include every batch's state (large for big logs)."),
    settings: Settings = Depends(get_audit_settings),
) -> Response:
    result = await _replay(settings, as_of, now)
    return Response(dumps(report(result, include_batches=batches)), media_type="application/json")


@router.get(
    "/report.md",
    summary="The Markdown report.",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/markdown": {}}}},
)
async def get_report_markdown(
    as_of: datetime | None = AS_OF, now: datetime | None = NOW, settings: Settings = Depends(get_audit_settings)
) -> PlainTextResponse:
    result = await _replay(settings, as_of, now)
    return PlainTextResponse(render_markdown(result), media_type="text/markdown")


@router.get("/report.html", summary="The self-contained HTML report.", response_class=HTMLResponse)
async def get_report_html(
    as_of: datetime | None = AS_OF, now: datetime | None = NOW, settings: Settings = Depends(get_audit_settings)
) -> HTMLResponse:
    result = await _replay(settings, as_of, now)
    return HTMLResponse(render_html(result))


@router.get("/batches/{batch_id}", summary="One batch: timeline, chain of custody, lineage, state, findings.")
async def get_batch(
    batch_id: str, as_of: datetime | None = AS_OF, settings: Settings = Depends(get_audit_settings)
) -> Response:
    detail = await off_loop(batch_detail(settings, batch_id, _options(as_of)))
    if detail is None:
        message = f"batch {batch_id} has no events in the log up to this moment; check the id"
        return JSONResponse({"error": {"code": "not_found", "message": message}}, status_code=404)
    return Response(dumps(detail.to_json()), media_type="application/json")


@router.get("/verify", summary="Verify every service's hash chain.")
async def get_verify(as_of: datetime | None = AS_OF, settings: Settings = Depends(get_audit_settings)) -> Response:
    result = await off_loop(replay(settings, options=_options(as_of, chains_only=True)))
    return Response(dumps(chains_report(result)), media_type="application/json")


@router.get(
    "/epcis",
    summary="The batch log as an EPCIS 2.0 JSON-LD document.",
    response_class=FileResponse,
    responses={200: {"content": {"application/ld+json": {}}}},
)
async def get_epcis(as_of: datetime | None = AS_OF, settings: Settings = Depends(get_audit_settings)) -> FileResponse:
    """Streamed to a temporary file first, so memory stays flat however long the log; deleted once sent."""
    handle = tempfile.NamedTemporaryFile(prefix="aidtrail-epcis-", suffix=".jsonld", delete=False)  # noqa: SIM115
    try:
        with handle:
            await off_loop(export_epcis(settings, handle, _options(as_of)))
    except BaseException:
        os.unlink(handle.name)
        raise
    return FileResponse(
        handle.name,
        media_type="application/ld+json",
        filename="aidtrail-epcis.jsonld",
        background=BackgroundTask(os.unlink, handle.name),
    )
