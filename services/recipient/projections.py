"""What the recipient service consumes, and the incoming view it reads out of the shared batch view.

The service keeps a copy of every batch's stream (`replicate_batches`), so that it can decide a receipt
confirmation locally, and so that a recipient can see what is on its way to it. The incoming view needs no table
of its own: `batch_view.recipient_id` already names the recipient a batch is allocated or delivered to, and the
rest comes from the folded state stored beside it.
"""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.recipient.schemas import IncomingBatch, IncomingStatus
from shared.messaging.consumer import Handler
from shared.projections.batch_view import batch_view, replicate_batches
from shared.web.pagination import Page, PageParams
from shared.web.runtime import ServiceRuntime

EN_ROUTE = (IncomingStatus.ALLOCATED, IncomingStatus.PICKED, IncomingStatus.IN_TRANSIT, IncomingStatus.AT_HUB)


def batch_consumer(runtime: ServiceRuntime) -> Handler:
    return replicate_batches(runtime.store)


def _allocations_to(state: dict[str, Any], recipient_id: str) -> list[dict[str, Any]]:
    return [a for a in state.get("allocations", []) if a["recipient_id"] == recipient_id]


def quantity_headed_for(state: dict[str, Any], recipient_id: str) -> int:
    """What the recipient can expect from the batch as it stands: promised, picked, on the road or delivered."""
    status = IncomingStatus(state["status"])
    if status is IncomingStatus.ALLOCATED:
        return sum(int(a["quantity"]) for a in _allocations_to(state, recipient_id))
    if status is IncomingStatus.PICKED:
        return int(state["picked_allocation"]["quantity"])
    if status in (IncomingStatus.IN_TRANSIT, IncomingStatus.AT_HUB):
        return int(state["in_transit"])
    return int(state["delivered"])


def need_headed_for(state: dict[str, Any], recipient_id: str) -> str | None:
    picked = state.get("picked_allocation")
    if picked:
        return str(picked["need_id"])
    allocations = _allocations_to(state, recipient_id)
    return str(allocations[0]["need_id"]) if allocations else None


def incoming_batch(row: sa.RowMapping, recipient_id: str) -> IncomingBatch:
    state: dict[str, Any] = orjson.loads(row["state"])
    return IncomingBatch(
        batch_id=row["batch_id"],
        status=IncomingStatus(row["status"]),
        item=row["item"],
        pledge_id=row["pledge_id"],
        donor_id=row["donor_id"],
        need_id=need_headed_for(state, recipient_id),
        quantity=quantity_headed_for(state, recipient_id),
        delivered=int(state["delivered"]),
        confirmed_received=int(state["confirmed_received"]),
        confirmed_damaged=int(state["confirmed_damaged"]),
        shipment_id=row["shipment_id"],
        site_id=row["site_id"],
        updated_at=row["updated_at"],
    )


async def incoming_batches(
    conn: AsyncConnection, recipient_id: str, statuses: list[IncomingStatus], page: PageParams
) -> Page[IncomingBatch]:
    where = sa.and_(batch_view.c.recipient_id == recipient_id, batch_view.c.status.in_([s.value for s in statuses]))
    total = int((await conn.execute(sa.select(sa.func.count()).select_from(batch_view).where(where))).scalar() or 0)
    query = sa.select(batch_view).where(where).order_by(batch_view.c.updated_at.desc(), batch_view.c.batch_id)
    rows = (await conn.execute(query.limit(page.limit).offset(page.offset))).mappings().all()
    return Page.of([incoming_batch(row, recipient_id) for row in rows], total, page)
