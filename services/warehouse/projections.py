"""What the warehouse keeps from consumed events: its copy of every batch stream, the allocations those streams
hold, and the sites, recipients and needs announced on the reference topic.

Every write here is an idempotent upsert keyed by the entity's id, so replaying a topic from offset zero rebuilds
exactly the same tables, and a duplicate that slipped past the dedup table changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.warehouse.tables import allocations, directory, needs
from shared.domain.batch_state import BatchState, BatchStatus
from shared.events import reference_events as ref
from shared.events.batch_events import Payload
from shared.events.envelope import Envelope, format_time
from shared.messaging.consumer import Handler
from shared.projections.batch_view import refresh_batch
from shared.projections.directory import upsert
from shared.store.event_store import EventStore

NEED_OPEN = "open"
NEED_FULFILLED = "fulfilled"

# What became of an allocation once its batch was picked, by the status of the batch that holds it.
_PICKED_STATUS = {
    BatchStatus.PICKED: "picked",
    BatchStatus.IN_TRANSIT: "in_transit",
    BatchStatus.AT_HUB: "in_transit",
    BatchStatus.DELIVERED: "delivered",
    BatchStatus.CONFIRMED: "confirmed",
    BatchStatus.WRITTEN_OFF: "written_off",
}


# --- allocations, from batch states --------------------------------------------------------------------------


def allocation_rows(state: BatchState, updated_at: str) -> list[dict[str, Any]]:
    """The allocations a batch holds: open ones, and the one it was picked for with how far it has come."""
    common = {
        "batch_id": state.batch_id,
        "root_batch_id": state.root_batch_id,
        "item": state.item,
        "site_id": state.location_site_id or state.warehouse_id,
        "updated_at": updated_at,
    }
    held = [(allocation, "open") for allocation in state.allocations]
    if state.picked_allocation is not None:
        held.append((state.picked_allocation, _PICKED_STATUS.get(state.status, state.status.value)))
    return [
        {
            **common,
            "allocation_id": allocation.allocation_id,
            "need_id": allocation.need_id,
            "recipient_id": allocation.recipient_id,
            "quantity": allocation.quantity,
            "status": status,
        }
        for allocation, status in held
    ]


async def sync_allocations(conn: AsyncConnection, state: BatchState, updated_at: str) -> None:
    """A split moves an allocation to the child; keyed by allocation id, the row simply follows it there."""
    for row in allocation_rows(state, updated_at):
        await upsert(conn, allocations, "allocation_id", row)


def warehouse_batches(store: EventStore) -> Handler:
    """The shared batch replication (as `replicate_batches`), plus the allocations of the batch that changed.

    It refreshes the view itself rather than wrapping `replicate_batches`, so the batch is folded once, not twice.
    This service's own events coming back from the topic change nothing: their view and allocation rows were
    written in the transaction that committed them.
    """

    async def handle(conn: AsyncConnection, envelope: Envelope, payload: Payload) -> None:
        if not await store.replicate(conn, envelope):
            return
        updated_at = format_time(envelope.time)
        state = await refresh_batch(conn, store, envelope.subject, updated_at)
        if state is not None:
            await sync_allocations(conn, state, updated_at)

    return handle


# --- sites, recipients, needs, from the reference topic ------------------------------------------------------


def as_utc(moment: datetime) -> datetime:
    """Deadlines without a zone are read as UTC, so that every stored deadline sorts on one clock."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def _on_need(conn: AsyncConnection, need: ref.NeedRegistered, envelope: Envelope) -> None:
    """A re-delivered registration must not reopen a need that was fulfilled in the meantime."""
    row = {
        "need_id": need.need_id,
        "recipient_id": need.recipient_id,
        "item": need.item,
        "quantity": need.quantity,
        "priority": need.priority.value,
        "deadline": format_time(as_utc(need.deadline)) if need.deadline else None,
        "registered_at": format_time(envelope.time),
    }
    updated = await conn.execute(needs.update().where(needs.c.need_id == need.need_id).values(**row))
    if updated.rowcount == 0:
        await conn.execute(needs.insert().values(**row, status=NEED_OPEN, quantity_received=None))


async def _on_need_fulfilled(conn: AsyncConnection, fulfilled: ref.NeedFulfilled, envelope: Envelope) -> None:
    """The need may not have arrived yet (another partition); a placeholder keeps the fulfilment until it does."""
    closed = {"status": NEED_FULFILLED, "quantity_received": fulfilled.quantity_received}
    updated = await conn.execute(needs.update().where(needs.c.need_id == fulfilled.need_id).values(**closed))
    if updated.rowcount == 0:
        placeholder = {
            "need_id": fulfilled.need_id,
            "recipient_id": fulfilled.recipient_id,
            "item": "unknown",
            "quantity": fulfilled.quantity_received,
            "priority": ref.Priority.NORMAL.value,
            "deadline": None,
            "registered_at": format_time(envelope.time),
        }
        await conn.execute(needs.insert().values(**placeholder, **closed))


def reference_handler() -> Handler:
    """Reference events the warehouse does not need (donors, pledges, shipments) are consumed and ignored."""

    async def handle(conn: AsyncConnection, envelope: Envelope, payload: Payload) -> None:
        if await directory.apply(conn, envelope, payload):
            return
        if isinstance(payload, ref.NeedRegistered):
            await _on_need(conn, payload, envelope)
        elif isinstance(payload, ref.NeedFulfilled):
            await _on_need_fulfilled(conn, payload, envelope)

    return handle
