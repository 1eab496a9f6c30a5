"""The service's own events, echoed back by the topic its relay publishes to, in one statement per polled batch.

A command stores its events in the service's streams and refreshes its views in the very transaction that queues
them for publication. For a handler that only keeps streams and the views folded from them (`replicate_batches`),
an own event coming back therefore changes nothing but the dedup table; going through the handler cost a
savepoint, the dedup insert, the known-event check and the release, per record, inside the transaction that holds
the write lock. Instead, one `INSERT .. SELECT .. ON CONFLICT DO NOTHING RETURNING` writes the dedup rows of every
record of the batch that (a) names this service as its source in its headers and (b) the events table holds as
this service's own event. The records it returns are done; every other record, a duplicate included, takes the
ordinary path, which tells duplicates apart and replicates an own event the store does not hold (a restored
database, say). The partition's position still moves past all of them in the same transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from aiokafka import ConsumerRecord
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.events.batch_events import Payload
from shared.events.envelope import Envelope
from shared.store.schema import events, processed_events

SOURCE_HEADER = "ce_source"
ID_HEADER = "ce_id"


@dataclass(frozen=True, slots=True)
class SkipsOwnStoredEvents:
    """A handler for which an event of `source` that the events table already holds changes nothing.

    Wrapping says so to the consumer, which then records such events in bulk instead of calling the handler.
    Only handlers that own no state beyond the streams and the views the command path refreshes may say it.
    """

    handler: Callable[[AsyncConnection, Envelope, Payload], Awaitable[None]]
    source: str

    async def __call__(self, conn: AsyncConnection, envelope: Envelope, payload: Payload) -> None:
        await self.handler(conn, envelope, payload)


def own_source(handler: object) -> str | None:
    return handler.source if isinstance(handler, SkipsOwnStoredEvents) else None


def own_event_id(record: ConsumerRecord, source: bytes) -> str | None:
    """The event id of a record whose headers name `source`; None for any other record (or unreadable headers)."""
    event_id: bytes | None = None
    from_source = False
    for name, value in record.headers or ():
        if name == SOURCE_HEADER:
            from_source = value == source
        elif name == ID_HEADER:
            event_id = value
    if not from_source or not event_id:
        return None
    try:
        return event_id.decode()
    except UnicodeDecodeError:
        return None


def _bulk_mark(insert: Any) -> Any:
    stored_own = sa.select(sa.cast(sa.bindparam("consumer"), sa.String), events.c.event_id).where(
        events.c.event_id.in_(sa.bindparam("event_ids", expanding=True)),
        events.c.source == sa.bindparam("source"),
    )
    statement = insert(processed_events).from_select(["consumer", "event_id"], stored_own)
    return statement.on_conflict_do_nothing().returning(processed_events.c.event_id)


_BULK_MARKS: dict[str, Any] = {"sqlite": _bulk_mark(sqlite_insert), "postgresql": _bulk_mark(postgresql_insert)}


async def mark_own_stored(conn: AsyncConnection, consumer: str, source: str, event_ids: Sequence[str]) -> set[str]:
    """Record as processed those of `event_ids` that are `source`'s own events in the store and were not recorded
    before; returns them. Other dialects record nothing here (every record then takes the ordinary path)."""
    statement = _BULK_MARKS.get(conn.dialect.name)
    if statement is None or not event_ids:
        return set()
    params = {"consumer": consumer, "event_ids": list(event_ids), "source": source}
    return {str(row[0]) for row in await conn.execute(statement, params)}
