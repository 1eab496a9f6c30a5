"""The batch view every service keeps: each batch's state as the fold rebuilds it, with columns to filter on.

The handler first keeps the event in the service's own copy of the stream (so that commands can be decided
locally), then refolds the stream and stores the result. Services build their own views on top of this one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.domain.batch_fold import fold
from shared.domain.batch_state import BatchState
from shared.events.batch_events import Payload
from shared.events.envelope import Envelope, format_time
from shared.messaging.consumer import Handler
from shared.messaging.own_events import SkipsOwnStoredEvents
from shared.store.event_store import EventStore, StoredEvent
from shared.store.schema import metadata

batch_view = sa.Table(
    "batch_view",
    metadata,
    sa.Column("batch_id", sa.String(120), primary_key=True),
    sa.Column("status", sa.String(30), nullable=False),
    sa.Column("item", sa.String(120), nullable=False),
    sa.Column("pledge_id", sa.String(120), nullable=False),
    sa.Column("donor_id", sa.String(120), nullable=False),
    sa.Column("parent_batch_id", sa.String(120)),
    sa.Column("site_id", sa.String(120)),
    sa.Column("warehouse_id", sa.String(120)),
    sa.Column("shipment_id", sa.String(120)),
    sa.Column("recipient_id", sa.String(120)),
    sa.Column("lot", sa.String(200)),
    sa.Column("expiry", sa.String(20)),
    sa.Column("on_hand", sa.BigInteger, nullable=False),
    sa.Column("free", sa.BigInteger, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
)

VIEW_INDEXES = {
    "ix_batch_view_status": ["status"],
    "ix_batch_view_site": ["site_id", "item"],
    "ix_batch_view_warehouse": ["warehouse_id", "status"],
    "ix_batch_view_donor": ["donor_id"],
    "ix_batch_view_recipient": ["recipient_id"],
    "ix_batch_view_shipment": ["shipment_id"],
}


def fold_stored(stored: list[StoredEvent], batch_id: str) -> BatchState | None:
    return fold((event.payload() for event in stored), batch_id)


def state_to_json(state: BatchState) -> dict[str, Any]:
    data = dataclasses.asdict(state)
    data["reserved"] = state.reserved
    data["free"] = state.free
    data["allocated_recipient_id"] = state.allocated_recipient_id
    return data


def current_recipient(state: BatchState) -> str | None:
    return state.delivered_to_recipient_id or state.allocated_recipient_id or state.designated_recipient_id


def view_row(state: BatchState, updated_at: str) -> dict[str, Any]:
    return {
        "batch_id": state.batch_id,
        "status": state.status.value,
        "item": state.item,
        "pledge_id": state.pledge_id,
        "donor_id": state.donor_id,
        "parent_batch_id": state.parent_batch_id,
        "site_id": state.location_site_id,
        "warehouse_id": state.warehouse_id,
        "shipment_id": state.shipment_id,
        "recipient_id": current_recipient(state),
        "lot": state.lot,
        "expiry": state.expiry.isoformat() if state.expiry else None,
        "on_hand": state.on_hand,
        "free": state.free,
        "state": orjson.dumps(state_to_json(state), default=str).decode(),
        "version": state.version,
        "updated_at": updated_at,
    }


async def upsert_view(conn: AsyncConnection, state: BatchState, updated_at: str) -> None:
    """Never moves a row back to an older version, whichever transaction commits last.

    On SQLite and PostgreSQL it is one INSERT .. ON CONFLICT DO UPDATE .. WHERE version <= new version: one round
    trip (not up to three) inside the transaction that holds the write lock, atomic against a concurrent insert,
    and a statement built once and cached. Other dialects take the portable path.
    """
    row = view_row(state, updated_at)
    upsert = _UPSERTS.get(conn.dialect.name)
    if upsert is not None:
        await conn.execute(upsert, row)
        return
    newer_or_same = (batch_view.c.batch_id == state.batch_id) & (batch_view.c.version <= state.version)
    updated = await conn.execute(batch_view.update().where(newer_or_same).values(**row))
    if updated.rowcount:
        return
    exists = await conn.execute(sa.select(batch_view.c.version).where(batch_view.c.batch_id == state.batch_id))
    if exists.first() is None:
        await conn.execute(batch_view.insert().values(**row))


def _guarded_upsert(insert: Any) -> Any:
    statement = insert(batch_view)
    columns = {column.name: statement.excluded[column.name] for column in batch_view.c if column.name != "batch_id"}
    return statement.on_conflict_do_update(
        index_elements=[batch_view.c.batch_id],
        set_=columns,
        where=batch_view.c.version <= statement.excluded.version,
    )


_UPSERTS: dict[str, Any] = {"sqlite": _guarded_upsert(sqlite_insert), "postgresql": _guarded_upsert(postgresql_insert)}


async def refresh_batch(conn: AsyncConnection, store: EventStore, batch_id: str, updated_at: str) -> BatchState | None:
    """Refold one batch from the local stream and store the result; used after local appends and replication."""
    state = fold_stored(await store.load(conn, batch_id), batch_id)
    if state is not None:
        await upsert_view(conn, state, updated_at)
    return state


def replicate_batches(store: EventStore) -> Handler:
    """Handler for the batch topic: keep the event in the local stream and refresh the batch view.

    The service's own events come back from Kafka too; their view was refreshed when they were committed. The
    consumer is told so (SkipsOwnStoredEvents), and records those it finds in the store without calling this.
    """

    async def handle(conn: AsyncConnection, envelope: Envelope, payload: Payload) -> None:
        """An event already in the local stream (this service's own, coming back from the topic) changes nothing:
        its view was refreshed in the transaction that stored it. Refolding it would cost a load, a fold and a
        write per own event, and on PostgreSQL could put an older fold back over a newer command's view."""
        if await store.replicate(conn, envelope):
            await refresh_batch(conn, store, envelope.subject, format_time(envelope.time))

    return SkipsOwnStoredEvents(handle, store.source)


async def read_state(conn: AsyncConnection, batch_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(sa.select(batch_view.c.state).where(batch_view.c.batch_id == batch_id))).first()
    return orjson.loads(row.state) if row else None
