"""Routes about places: registering warehouses and relay hubs, what a warehouse expects, and what it holds."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from services.warehouse import stock
from services.warehouse.api_common import ADMINS, IDEMPOTENCY, READERS, STAFF_READERS, new_id
from services.warehouse.schemas import ExpectedBatch, SiteIn, SiteOut, StockRow
from services.warehouse.tables import directory, sites
from shared.domain.batch_state import BatchStatus
from shared.domain.errors import Conflict, NotFound
from shared.events import reference_events as ref
from shared.events.envelope import format_time
from shared.projections.batch_view import batch_view
from shared.store.event_store import StreamAppend
from shared.web.auth import Principal
from shared.web.commands import Outcome
from shared.web.pagination import Page, PageParams, page_params
from shared.web.route_helpers import count_rows, paged_rows, run_command
from shared.web.runtime import ServiceRuntime, get_runtime

router = APIRouter(tags=["sites and stock"])


@router.post(
    "/sites",
    status_code=201,
    response_model=SiteOut,
    summary="Register a warehouse or relay hub (admin); emits site.registered on the reference topic.",
)
async def register_site(
    body: SiteIn,
    principal: Principal = Depends(ADMINS),
    idempotency_key: str | None = IDEMPOTENCY,
    runtime: ServiceRuntime = Depends(get_runtime),
) -> JSONResponse:
    site_id = body.site_id or new_id("site")

    async def decide(conn: AsyncConnection) -> Outcome:
        if (await conn.execute(sa.select(sites.c.site_id).where(sites.c.site_id == site_id))).first():
            raise Conflict(f"site {site_id} is already registered; choose another site_id or leave it out")
        payload = ref.SiteRegistered(
            site_id=site_id, name=body.name, kind=ref.SiteKind(body.kind.value), city=body.city, country=body.country
        )
        event = runtime.new_event(payload, site_id, principal.actor)
        row = directory.site_row(payload, format_time(event.time))  # the same row the reference consumer would build
        await conn.execute(sites.insert().values(**row))
        return Outcome(body=SiteOut(**row), status_code=201, appends=[StreamAppend(site_id, 0, [event])])

    request = {"route": "register_site", **body.model_dump(mode="json")}
    return await run_command(runtime, principal, idempotency_key, request, decide)


@router.get("/sites", response_model=Page[SiteOut], summary="Registered sites, paged, optionally of one kind.")
async def list_sites(
    kind: ref.SiteKind | None = Query(None, description="Only sites of this kind."),
    page: PageParams = Depends(page_params),
    _: Principal = Depends(READERS),
    runtime: ServiceRuntime = Depends(get_runtime),
) -> Page[SiteOut]:
    where = sites.c.kind == kind.value if kind else sa.true()
    async with runtime.database.read() as conn:
        rows, total = await paged_rows(conn, sites, where, [sites.c.site_id], page)
    return Page.of([SiteOut(**row) for row in rows], total, page)


@router.get("/sites/{site_id}", response_model=SiteOut, summary="One registered site.")
async def get_site(
    site_id: str, _: Principal = Depends(READERS), runtime: ServiceRuntime = Depends(get_runtime)
) -> SiteOut:
    async with runtime.database.read() as conn:
        row = (await conn.execute(sa.select(sites).where(sites.c.site_id == site_id))).mappings().first()
    if row is None:
        raise NotFound(f"site {site_id} is not registered; list sites with GET /sites or register it with POST /sites")
    return SiteOut(**row)


@router.get(
    "/sites/{site_id}/expected-intake",
    response_model=Page[ExpectedBatch],
    summary="Batches pledged to this warehouse and not yet received, from the consumed batch.pledged events.",
    description="Pledges name their warehouse by id, so the site need not be registered here to expect goods.",
)
async def expected_intake(
    site_id: str,
    item: str | None = Query(None, description="Only this item."),
    page: PageParams = Depends(page_params),
    _: Principal = Depends(STAFF_READERS),
    runtime: ServiceRuntime = Depends(get_runtime),
) -> Page[ExpectedBatch]:
    where = sa.and_(
        batch_view.c.warehouse_id == site_id,
        batch_view.c.status == BatchStatus.PLEDGED.value,
        batch_view.c.item == item if item else sa.true(),
    )
    query = sa.select(batch_view.c.state, batch_view.c.updated_at).where(where).order_by(batch_view.c.batch_id)
    async with runtime.database.read() as conn:
        total = await count_rows(conn, batch_view, where)
        rows = (await conn.execute(query.limit(page.limit).offset(page.offset))).all()
    return Page.of([_expected(orjson.loads(row.state), row.updated_at) for row in rows], total, page)


def _expected(state: dict[str, object], updated_at: str) -> ExpectedBatch:
    return ExpectedBatch.model_validate({**state, "updated_at": updated_at})


@router.get(
    "/stock",
    response_model=Page[StockRow],
    summary="Stock per site, item, lot and expiry: on hand, reserved, free, quarantined; rebuilt from the events.",
)
async def list_stock(
    site_id: str | None = Query(None, description="Only this site."),
    item: str | None = Query(None, description="Only this item."),
    page: PageParams = Depends(page_params),
    _: Principal = Depends(READERS),
    runtime: ServiceRuntime = Depends(get_runtime),
) -> Page[StockRow]:
    conditions: list[sa.ColumnElement[bool]] = [
        batch_view.c.status.in_([status.value for status in stock.STOCK_STATUSES])
    ]
    if site_id:
        conditions.append(batch_view.c.site_id == site_id)
    if item:
        conditions.append(batch_view.c.item == item)
    query = sa.select(batch_view.c.site_id, batch_view.c.state).where(*conditions)
    async with runtime.database.read() as conn:
        rows = (await conn.execute(query)).all()
    lines = stock.aggregate((row.site_id, orjson.loads(row.state)) for row in rows)
    today = datetime.now(UTC).date()
    shown = lines[page.offset : page.offset + page.limit]
    items = [
        StockRow(
            site_id=line.site_id,
            item=line.item,
            unit=line.unit,
            lot=line.lot,
            expiry=line.expiry,
            expired=line.expired(today),
            on_hand=line.on_hand,
            reserved=line.reserved,
            free=line.free,
            quarantined=line.quarantined,
            awaiting_inspection=line.awaiting_inspection,
            batches=line.batches,
        )
        for line in shown
    ]
    return Page.of(items, len(lines), page)
