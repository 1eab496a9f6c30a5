"""The service's event store: streams with optimistic concurrency, a per-service hash chain, and the outbox.

Append writes, in the caller's ONE transaction: the events at their expected versions, the next links of the
service's hash chain, and one outbox row per event. Either all of it commits or none of it does, so an event is
never published that was not stored, and never stored without being queued for publication.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.domain.errors import Conflict
from shared.events.batch_events import Payload
from shared.events.envelope import (
    GENESIS_HASH,
    Envelope,
    encode_data,
    format_time,
    parse_time,
    to_headers,
    utc_now,
)
from shared.events.registry import BATCH_EVENT_TYPES, parse_envelope
from shared.store.schema import chain_head, events, outbox


class ConcurrencyConflict(Conflict):
    """Another writer appended to the stream first; the command is retried against the new state or refused."""


@dataclass(frozen=True, slots=True)
class TopicNames:
    batch: str
    reference: str

    def for_event(self, event_type: str) -> str:
        return self.batch if event_type in BATCH_EVENT_TYPES else self.reference


@dataclass(frozen=True, slots=True)
class StoredEvent:
    position: int
    stream_id: str
    version: int
    envelope: Envelope
    local: bool

    def payload(self) -> Payload:
        return parse_envelope(self.envelope)


@dataclass(frozen=True, slots=True)
class StreamAppend:
    stream_id: str
    expected_version: int
    envelopes: Sequence[Envelope]


def _row_to_stored(row: sa.Row[Any]) -> StoredEvent:
    envelope = Envelope(
        id=row.event_id,
        type=row.event_type,
        source=row.source,
        subject=row.stream_id,
        time=parse_time(row.time),
        actor=row.actor,
        correlation_id=row.correlation_id,
        causation_id=row.causation_id,
        sequence=row.sequence,
        prev_hash=row.prev_hash,
        data=orjson.loads(row.data),
    )
    return StoredEvent(row.position, row.stream_id, row.version, envelope, bool(row.local))


def _root_transaction(conn: AsyncConnection) -> object:
    """The transaction now open on the connection: what a value cached in `conn.info` (which lives as long as the
    pooled connection) is tied to."""
    sync = conn.sync_connection
    return None if sync is None else sync.get_transaction()


def _require_version(append: StreamAppend, actual: int) -> None:
    if actual != append.expected_version:
        raise ConcurrencyConflict(
            f"stream {append.stream_id} is at version {actual}, not {append.expected_version}: "
            "someone else changed it first; reload and try again"
        )


def _event_row(envelope: Envelope, version: int, *, local: bool) -> dict[str, Any]:
    return {
        "stream_id": envelope.subject,
        "version": version,
        "event_id": envelope.id,
        "event_type": envelope.type,
        "source": envelope.source,
        "time": format_time(envelope.time),
        "actor": envelope.actor,
        "correlation_id": envelope.correlation_id,
        "causation_id": envelope.causation_id,
        "sequence": envelope.sequence,
        "prev_hash": envelope.prev_hash,
        "data": orjson.dumps(envelope.data).decode(),
        "local": local,
    }


class EventStore:
    """One per service; `source` is the service name that signs its events and owns its hash chain."""

    def __init__(self, source: str, topics: TopicNames):
        self.source = source
        self.topics = topics

    async def load(self, conn: AsyncConnection, stream_id: str) -> list[StoredEvent]:
        query = sa.select(events).where(events.c.stream_id == stream_id).order_by(events.c.version)
        return [_row_to_stored(row) for row in await conn.execute(query)]

    async def load_many(self, conn: AsyncConnection, stream_ids: Sequence[str]) -> dict[str, list[StoredEvent]]:
        query = sa.select(events).where(events.c.stream_id.in_(list(stream_ids))).order_by(events.c.version)
        found: dict[str, list[StoredEvent]] = {stream_id: [] for stream_id in stream_ids}
        for row in await conn.execute(query):
            found[row.stream_id].append(_row_to_stored(row))
        return found

    async def current_version(self, conn: AsyncConnection, stream_id: str) -> int:
        query = sa.select(sa.func.max(events.c.version)).where(events.c.stream_id == stream_id)
        return int((await conn.execute(query)).scalar() or 0)

    async def read_all(self, conn: AsyncConnection, after_position: int = 0, limit: int = 1000) -> list[StoredEvent]:
        query = sa.select(events).where(events.c.position > after_position).order_by(events.c.position).limit(limit)
        return [_row_to_stored(row) for row in await conn.execute(query)]

    async def append(self, conn: AsyncConnection, appends: Sequence[StreamAppend]) -> list[Envelope]:
        """Append to one or more streams atomically; raises ConcurrencyConflict if any expectation is stale.

        A fixed number of statements whatever the number of streams and events (one version check, one insert of
        the events, one of the outbox rows): each statement is a round trip, and on SQLite the write lock is held
        for all of them. A call that names a stream twice keeps the step-by-step path, where the second
        expectation is checked after the first append.
        """
        sequence, prev_hash = self._head_locked_at_start(conn) or await self._lock_chain_head(conn)
        stream_ids = [append.stream_id for append in appends]
        if len(set(stream_ids)) != len(stream_ids):
            return await self._append_stepwise(conn, appends, sequence, prev_hash)
        await self._check_expected_versions(conn, appends)
        written: list[Envelope] = []
        rows: list[dict[str, Any]] = []
        for append in appends:
            for offset, envelope in enumerate(append.envelopes, start=1):
                sequence += 1
                chained = envelope.chained(sequence, prev_hash)
                prev_hash = chained.content_hash()
                rows.append(_event_row(chained, append.expected_version + offset, local=True))
                written.append(chained)
        await self._insert_events(conn, rows)
        await self._insert_outbox(conn, written)
        await self._store_chain_head(conn, sequence, prev_hash)
        return written

    async def _append_stepwise(
        self, conn: AsyncConnection, appends: Sequence[StreamAppend], sequence: int, prev_hash: str
    ) -> list[Envelope]:
        written: list[Envelope] = []
        for append in appends:
            await self._check_expected_version(conn, append)
            for offset, envelope in enumerate(append.envelopes, start=1):
                sequence += 1
                chained = envelope.chained(sequence, prev_hash)
                prev_hash = chained.content_hash()
                await self._insert_events(conn, [_event_row(chained, append.expected_version + offset, local=True)])
                written.append(chained)
        await self._insert_outbox(conn, written)
        await self._store_chain_head(conn, sequence, prev_hash)
        return written

    async def replicate(self, conn: AsyncConnection, envelope: Envelope) -> bool:
        """Keep another service's event of a stream this service decides on; False if already known."""
        known = await conn.execute(sa.select(events.c.position).where(events.c.event_id == envelope.id))
        if known.first() is not None:
            return False
        version = await self.current_version(conn, envelope.subject) + 1
        await conn.execute(events.insert(), _event_row(envelope, version, local=False))
        return True

    async def _check_expected_version(self, conn: AsyncConnection, append: StreamAppend) -> None:
        _require_version(append, await self.current_version(conn, append.stream_id))

    async def _check_expected_versions(self, conn: AsyncConnection, appends: Sequence[StreamAppend]) -> None:
        """Every stream's current version in one query (a stream with no events is at version 0)."""
        if not appends:
            return
        query = (
            sa.select(events.c.stream_id, sa.func.max(events.c.version))
            .where(events.c.stream_id.in_([append.stream_id for append in appends]))
            .group_by(events.c.stream_id)
        )
        current = {row[0]: int(row[1]) for row in await conn.execute(query)}
        for append in appends:
            _require_version(append, current.get(append.stream_id, 0))

    async def _insert_events(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        try:
            await conn.execute(events.insert(), rows)
        except IntegrityError as exc:
            versions = ", ".join(f"{row['stream_id']} version {row['version']}" for row in rows)
            raise ConcurrencyConflict(
                f"another writer appended first ({versions} already taken); reload and try again"
            ) from exc

    async def _insert_outbox(self, conn: AsyncConnection, written: list[Envelope]) -> None:
        if not written:
            return
        now = format_time(utc_now())
        rows = [
            {
                "event_id": envelope.id,
                "topic": self.topics.for_event(envelope.type),
                "key": envelope.subject,
                "headers": orjson.dumps([[n, v.decode()] for n, v in to_headers(envelope)]).decode(),
                "value": encode_data(envelope),
                "created_at": now,
            }
            for envelope in written
        ]
        await conn.execute(outbox.insert(), rows)

    async def lock_writes(self, conn: AsyncConnection) -> None:
        """Taken first by every writing transaction (commands and consumers) of this service.

        One lock, always taken first, means two transactions can never hold row locks in opposite orders:
        PostgreSQL deadlocks between a command and a projection touching the same batches cannot happen.
        SQLite needs no row lock (BEGIN IMMEDIATE already admits one writer at a time), so there it is skipped:
        the read would only be one more round trip while the database's write lock is held.
        """
        if conn.dialect.name == "postgresql":
            head = await self._lock_chain_head(conn)
            conn.info[self._head_key] = (_root_transaction(conn), head)

    def _head_locked_at_start(self, conn: AsyncConnection) -> tuple[int, str] | None:
        """The chain head `lock_writes` read in this very transaction, once: the row is locked, so only this
        transaction's own append can have moved it, and an append takes the value away (a later append in the
        same transaction, or after a savepoint rollback, reads the row again). Saves PostgreSQL commands the
        second SELECT .. FOR UPDATE of the same row."""
        taken = conn.info.pop(self._head_key, None)
        if taken is None or taken[0] is not _root_transaction(conn):
            return None
        head: tuple[int, str] = taken[1]
        return head

    @property
    def _head_key(self) -> str:
        return f"aidtrail.chain_head.{self.source}"

    async def _lock_chain_head(self, conn: AsyncConnection) -> tuple[int, str]:
        """Serialises this service's appends so that its sequence is gap-free and in commit order."""
        query = sa.select(chain_head.c.sequence, chain_head.c.hash).where(chain_head.c.source == self.source)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = (await conn.execute(query)).first()
        if row is None:
            await self._create_chain_head(conn)
            return await self._lock_chain_head(conn)
        return int(row.sequence), str(row.hash)

    async def _create_chain_head(self, conn: AsyncConnection) -> None:
        """The first append ever: insert the genesis row; a concurrent first append conflicts and retries."""
        try:
            async with conn.begin_nested():
                await conn.execute(chain_head.insert().values(source=self.source, sequence=0, hash=GENESIS_HASH))
        except IntegrityError:
            pass

    async def _store_chain_head(self, conn: AsyncConnection, sequence: int, head_hash: str) -> None:
        await conn.execute(
            chain_head.update().where(chain_head.c.source == self.source).values(sequence=sequence, hash=head_hash)
        )
