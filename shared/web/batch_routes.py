"""Read routes every service offers over its batch view: a batch's rebuilt state, its events, and a filtered list.

Every role may read them, except that a donor sees only the batches of their own pledges.
"""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from shared.domain.batch_state import BatchState
from shared.domain.errors import NotFound
from shared.events.envelope import format_time
from shared.events.registry import BATCH_EVENT_TYPES
from shared.projections.batch_view import batch_view, fold_stored, state_to_json
from shared.store.event_store import StoredEvent
from shared.web.auth import Principal, Role, current_principal, ensure_donor_access, forbidden, own_donor_filter
from shared.web.pagination import Page, PageParams, page_params
from shared.web.runtime import ServiceRuntime, get_runtime

router = APIRouter(prefix="/batches", tags=["batches"])


class BatchEvent(BaseModel):
    version: int
    id: str
    type: str
    source: str
    time: str
    actor: str
    correlation_id: str
    causation_id: str | None
    sequence: int | None
    data: dict[str, Any]


class BatchSummary(BaseModel):
    batch_id: str
    status: str
    item: str
    pledge_id: str
    donor_id: str
    parent_batch_id: str | None
    site_id: str | None
    warehouse_id: str | None
    shipment_id: str | None
    recipient_id: str | None
    on_hand: int
    free: int
    updated_at: str


class BatchDetail(BaseModel):
    batch_id: str
    state: dict[str, Any] = Field(description="The batch's state, rebuilt by folding its events.")
    allowed_next: list[str]


@router.get("/{batch_id}", response_model=BatchDetail, summary="A batch's state, rebuilt by the fold from its events.")
async def get_batch(
    batch_id: str, runtime: ServiceRuntime = Depends(get_runtime), principal: Principal = Depends(current_principal)
) -> BatchDetail:
    from shared.domain.batch_fold import allowed_events

    async with runtime.database.read() as conn:
        stored = await runtime.store.load(conn, batch_id)
    state = fold_batch(stored, batch_id)
    if state is None:
        raise NotFound(f"batch {batch_id} is not known to this service; check the id or wait for its events")
    ensure_donor_access(principal, state.donor_id)
    return BatchDetail(batch_id=batch_id, state=state_to_json(state), allowed_next=allowed_events(state))


@router.get("/{batch_id}/events", response_model=list[BatchEvent], summary="A batch's events, in stream order.")
async def get_batch_events(
    batch_id: str, runtime: ServiceRuntime = Depends(get_runtime), principal: Principal = Depends(current_principal)
) -> list[BatchEvent]:
    async with runtime.database.read() as conn:
        stored = await runtime.store.load(conn, batch_id)
    if not stored:
        raise NotFound(f"batch {batch_id} has no events here; check the id or wait for its events")
    if principal.role is Role.donor:
        ensure_donor_may_read(principal, fold_batch(stored, batch_id), batch_id)
    return [
        BatchEvent(
            version=e.version,
            id=e.envelope.id,
            type=e.envelope.type,
            source=e.envelope.source,
            time=format_time(e.envelope.time),
            actor=e.envelope.actor,
            correlation_id=e.envelope.correlation_id,
            causation_id=e.envelope.causation_id,
            sequence=e.envelope.sequence,
            data=e.envelope.data,
        )
        for e in stored
    ]


def fold_batch(stored: list[StoredEvent], batch_id: str) -> BatchState | None:
    """The batch's state; None for an unknown id and for a stream that is no batch (a pledge, donor, shipment or
    need shares the event store), which the fold would otherwise refuse as an impossible first event (409)."""
    if not stored or stored[0].envelope.type not in BATCH_EVENT_TYPES:
        return None
    return fold_stored(stored, batch_id)


def ensure_donor_may_read(principal: Principal, state: BatchState | None, stream_id: str) -> None:
    """A donor reads only their own batches here; other streams (pledges, shipments, needs) are not batches, and
    the pledge service shows a donor their own pledges at GET /pledges/{pledge_id}."""
    if state is None:
        raise forbidden(f"{stream_id} is not a batch; a donor reads their own pledges at GET /pledges/{{pledge_id}}")
    ensure_donor_access(principal, state.donor_id)


@router.get("", response_model=Page[BatchSummary], summary="Batches known to this service, filtered and paged.")
async def list_batches(
    status: str | None = Query(None, description="Only batches in this state, e.g. in_stock."),
    item: str | None = Query(None),
    site_id: str | None = Query(None, description="Where the batch is now."),
    warehouse_id: str | None = Query(None),
    donor_id: str | None = Query(None),
    pledge_id: str | None = Query(None),
    recipient_id: str | None = Query(None),
    shipment_id: str | None = Query(None),
    page: PageParams = Depends(page_params),
    runtime: ServiceRuntime = Depends(get_runtime),
    principal: Principal = Depends(current_principal),
) -> Page[BatchSummary]:
    donor_id = own_donor_filter(principal, donor_id)
    filters = {
        "status": status,
        "item": item,
        "site_id": site_id,
        "warehouse_id": warehouse_id,
        "donor_id": donor_id,
        "pledge_id": pledge_id,
        "recipient_id": recipient_id,
        "shipment_id": shipment_id,
    }
    return await query_batches(runtime, filters, page)


async def query_batches(
    runtime: ServiceRuntime, filters: dict[str, str | None], page: PageParams
) -> Page[BatchSummary]:
    conditions = [batch_view.c[name] == value for name, value in filters.items() if value is not None]
    where = sa.and_(sa.true(), *conditions)
    columns = [batch_view.c[name] for name in BatchSummary.model_fields]
    query = sa.select(*columns).where(where).order_by(batch_view.c.batch_id).limit(page.limit).offset(page.offset)
    async with runtime.database.read() as conn:
        total = int((await conn.execute(sa.select(sa.func.count()).select_from(batch_view).where(where))).scalar() or 0)
        rows = (await conn.execute(query)).mappings().all()
    return Page.of([BatchSummary(**row) for row in rows], total, page)


def loads_state(text: str) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(text)
    return data
