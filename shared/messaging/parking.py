"""What an operator can do with parked events: list, show, fix, replay and discard them.

A parked event stays parked until someone decides: the consumer never retries it by itself, because the reason
it failed (a malformed record, an event the rules refuse) does not go away with time. The operator fixes the
record (its payload or headers), then replays the stream: its parked events are applied in offset order through
the consumer's own handler, in ONE transaction, with the same dedup and the same rules as live events. The first
one that still fails stays parked with its new reason, and so does everything behind it, so a stream is never
applied out of order. Discarding gives up on one event, with a reason that is kept.

Every action is logged in `dead_letter_actions` with who did it and the record as it was, so an auditor can
see afterwards what was changed, replayed or thrown away. The original record also stays on the dead-letter
topic, where the consumer published it when it parked it.
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.domain.errors import NotFound
from shared.events.envelope import format_time, from_record, utc_now
from shared.events.registry import parse_envelope
from shared.messaging.consumer import EVENT_ID_LENGTH, UNREADABLE, Handler, is_refusal, refusal_reason
from shared.store.database import Database
from shared.store.schema import dead_letter_actions, parked_events, processed_events

LockWrites = Callable[[AsyncConnection], Awaitable[None]]
BEHIND = "parked behind an earlier event of this stream that could not be applied"


@dataclass(frozen=True, slots=True)
class ParkedRecord:
    id: int
    consumer: str
    stream_id: str
    topic: str
    partition: int
    offset: int
    event_id: str | None
    reason: str
    headers: list[tuple[str, str]]
    value: bytes | None
    parked_at: str

    def snapshot(self) -> dict[str, Any]:
        """The record as it is now, for the action log: the value base64-encoded, since it may not be text."""
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "event_id": self.event_id,
            "reason": self.reason,
            "headers": [list(pair) for pair in self.headers],
            "value_base64": None if self.value is None else base64.b64encode(self.value).decode(),
        }


@dataclass(frozen=True, slots=True)
class RecordFix:
    """A corrected payload and/or header changes: a header set to None is removed."""

    value: bytes | None = None
    headers: dict[str, str | None] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True, slots=True)
class ReplayTarget:
    """A consumer whose parked events can be replayed: its name, its own handler and its write lock."""

    consumer: str
    handler: Handler
    lock_writes: LockWrites | None = None


@dataclass
class ReplayResult:
    consumer: str
    stream_id: str
    applied: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    still_parked: list[tuple[int, str]] = field(default_factory=list)

    @property
    def unparked(self) -> bool:
        return not self.still_parked


def _to_record(row: sa.Row[Any]) -> ParkedRecord:
    headers = [(str(name), str(value)) for name, value in orjson.loads(row.headers)]
    return ParkedRecord(
        id=int(row.id),
        consumer=row.consumer,
        stream_id=row.stream_id,
        topic=row.topic,
        partition=int(row.partition),
        offset=int(row.offset),
        event_id=row.event_id,
        reason=row.reason,
        headers=headers,
        value=None if row.value is None else bytes(row.value),
        parked_at=row.parked_at,
    )


def _filters(consumer: str | None, stream_id: str | None) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if consumer:
        conditions.append(parked_events.c.consumer == consumer)
    if stream_id:
        conditions.append(parked_events.c.stream_id == stream_id)
    return conditions


_ORDER = (parked_events.c.consumer, parked_events.c.topic, parked_events.c.partition, parked_events.c.offset)


async def list_parked(
    database: Database, *, consumer: str | None = None, stream_id: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[ParkedRecord], int]:
    """One page of parked events, in the order a replay would apply them, and how many there are in all."""
    conditions = _filters(consumer, stream_id)
    query = sa.select(parked_events).where(*conditions).order_by(*_ORDER, parked_events.c.id)
    count = sa.select(sa.func.count()).select_from(parked_events).where(*conditions)
    async with database.read() as conn:
        total = int((await conn.execute(count)).scalar() or 0)
        rows = (await conn.execute(query.limit(limit).offset(offset))).all()
    return [_to_record(row) for row in rows], total


async def get_parked(database: Database, parked_id: int) -> tuple[ParkedRecord, list[dict[str, Any]]]:
    """One parked event and what operators did with it so far."""
    async with database.read() as conn:
        record = await _load(conn, parked_id)
        query = sa.select(dead_letter_actions).where(dead_letter_actions.c.parked_id == parked_id)
        rows = (await conn.execute(query.order_by(dead_letter_actions.c.id))).mappings().all()
    history = [{key: row[key] for key in ("action", "actor", "note", "at")} for row in rows]
    return record, history


async def _load(conn: AsyncConnection, parked_id: int) -> ParkedRecord:
    row = (await conn.execute(sa.select(parked_events).where(parked_events.c.id == parked_id))).first()
    if row is None:
        raise NotFound(f"no parked event {parked_id}; list them with GET /admin/parked")
    return _to_record(row)


async def _log(conn: AsyncConnection, record: ParkedRecord, action: str, actor: str, note: str) -> None:
    await conn.execute(
        dead_letter_actions.insert().values(
            parked_id=record.id,
            consumer=record.consumer,
            stream_id=record.stream_id,
            action=action,
            actor=actor,
            note=note,
            record=orjson.dumps(record.snapshot()).decode(),
            at=format_time(utc_now()),
        )
    )


def fixed_headers(headers: list[tuple[str, str]], changes: dict[str, str | None]) -> list[tuple[str, str]]:
    """Changed headers keep their place, removed ones go, new ones are appended in the order given."""
    kept = [(name, changes.get(name, value)) for name, value in headers]
    present = {name for name, _ in headers}
    added = [(name, value) for name, value in changes.items() if name not in present]
    return [(name, value) for name, value in kept + added if value is not None]


async def fix_parked(database: Database, parked_id: int, fix: RecordFix, actor: str) -> ParkedRecord:
    """Change the parked copy of the record; the log keeps the record as it was before."""
    async with database.transaction() as conn:
        record = await _load(conn, parked_id)
        headers = fixed_headers(record.headers, fix.headers)
        value = record.value if fix.value is None else fix.value
        differs = (("value", value != record.value), ("headers", headers != record.headers))
        changed = " and ".join(part for part, changed in differs if changed) or "nothing"
        await _log(conn, record, "fixed", actor, fix.note or f"changed {changed}")
        event_id = next((v for n, v in headers if n == "ce_id"), None)
        await conn.execute(
            parked_events.update()
            .where(parked_events.c.id == parked_id)
            .values(
                headers=orjson.dumps([list(pair) for pair in headers]).decode(),
                value=value,
                event_id=None if event_id is None else event_id[:EVENT_ID_LENGTH],
            )
        )
        return await _load(conn, parked_id)


async def discard_parked(
    database: Database, parked_id: int, reason: str, actor: str, lock_writes: LockWrites | None = None
) -> tuple[ParkedRecord, int]:
    """Give up on one event, saying why; returns it and how many events of its stream are still parked."""
    if not reason.strip():
        raise ValueError("discarding an event needs a reason; it is kept in the dead-letter action log")
    async with database.transaction() as conn:
        if lock_writes is not None:
            await lock_writes(conn)
        record = await _load(conn, parked_id)
        await _log(conn, record, "discarded", actor, reason.strip())
        await conn.execute(parked_events.delete().where(parked_events.c.id == parked_id))
        return record, await _count_parked(conn, record.consumer, record.stream_id)


async def _count_parked(conn: AsyncConnection, consumer: str, stream_id: str) -> int:
    query = sa.select(sa.func.count()).select_from(parked_events).where(*_filters(consumer, stream_id))
    return int((await conn.execute(query)).scalar() or 0)


async def parked_consumers(database: Database, stream_id: str) -> list[str]:
    """The consumers that hold parked events of this stream (usually one)."""
    query = sa.select(parked_events.c.consumer).where(parked_events.c.stream_id == stream_id).distinct()
    async with database.read() as conn:
        return sorted(row.consumer for row in await conn.execute(query))


async def replay_stream(database: Database, target: ReplayTarget, stream_id: str, actor: str) -> ReplayResult:
    """Apply the stream's parked events in offset order, in one transaction, through the consumer's handler.

    The write lock is taken first, as by the consumer itself, so a live event of the stream waits for the
    replay to commit and then sees whether the stream is still parked.
    """
    result = ReplayResult(target.consumer, stream_id)
    async with database.transaction() as conn:
        if target.lock_writes is not None:
            await target.lock_writes(conn)
        query = sa.select(parked_events).where(*_filters(target.consumer, stream_id)).order_by(*_ORDER)
        records = [_to_record(row) for row in (await conn.execute(query.order_by(parked_events.c.id))).all()]
        for index, record in enumerate(records):
            outcome = await _apply(conn, target, record)
            if isinstance(outcome, str):
                await _keep_parked(conn, records[index:], outcome, actor, result)
                break
            await _log(conn, record, "replayed" if outcome else "dropped_duplicate", actor, "applied by replay")
            await conn.execute(parked_events.delete().where(parked_events.c.id == record.id))
            (result.applied if outcome else result.duplicates).append(record.id)
    return result


async def _keep_parked(
    conn: AsyncConnection, records: list[ParkedRecord], reason: str, actor: str, result: ReplayResult
) -> None:
    """The first still-failing event gets its new reason; those behind it stay parked behind it."""
    first, behind = records[0], records[1:]
    await conn.execute(parked_events.update().where(parked_events.c.id == first.id).values(reason=reason))
    await _log(conn, first, "replay_failed", actor, reason)
    result.still_parked.append((first.id, reason))
    ids = [record.id for record in behind]
    if ids:
        await conn.execute(parked_events.update().where(parked_events.c.id.in_(ids)).values(reason=BEHIND))
    result.still_parked.extend((record.id, BEHIND) for record in behind)


class _AlreadyApplied(Exception):
    """The consumer applied this event before (a duplicate parked behind its stream): it is dropped."""


async def _apply(conn: AsyncConnection, target: ReplayTarget, record: ParkedRecord) -> bool | str:
    """True if applied, False if it was a duplicate, or the reason it still fails."""
    headers = [(name, value.encode()) for name, value in record.headers]
    try:
        envelope = from_record(headers, record.value)
        payload = parse_envelope(envelope)
    except UNREADABLE as exc:
        return str(exc)
    try:
        async with conn.begin_nested():
            await _mark_processed(conn, target.consumer, envelope.id)
            await target.handler(conn, envelope, payload)
    except _AlreadyApplied:
        return False
    except Exception as exc:
        if not is_refusal(exc):
            raise
        return refusal_reason(exc)
    return True


async def _mark_processed(conn: AsyncConnection, consumer: str, event_id: str) -> None:
    try:
        await conn.execute(processed_events.insert().values(consumer=consumer, event_id=event_id))
    except IntegrityError as exc:
        raise _AlreadyApplied(event_id) from exc
