"""Events a consumer cannot apply are parked with their reason and published to the dead-letter topic.

Later events of the same stream are parked behind the first one, so that a batch's events are never applied out
of order and never silently skipped; other streams flow on. The dead-letter record goes through the outbox, in
the consumer's transaction, so it cannot be lost either.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.events.envelope import format_time, utc_now
from shared.store.schema import outbox, parked_events


@dataclass(frozen=True, slots=True)
class FailedRecord:
    consumer: str
    stream_id: str
    topic: str
    partition: int
    offset: int
    event_id: str | None
    headers: list[tuple[str, bytes]]
    value: bytes | None


def _header_text(headers: list[tuple[str, bytes]]) -> list[list[str]]:
    return [[name, value.decode(errors="replace")] for name, value in headers]


async def park(
    conn: AsyncConnection, record: FailedRecord, reason: str, *, dead_letter_topic: str, blocking: bool
) -> None:
    """Idempotent per record (consumer, topic, partition, offset): a consumer rebuilt from offset zero meets the
    same poison records again, and must park them again without tripping over the rows of the first time."""
    now = format_time(utc_now())
    if not await _is_parked(conn, record):
        await _insert_parked(conn, record, reason, now, blocking=blocking)
    dlq_id = f"dlq:{record.consumer}:{record.topic}:{record.partition}:{record.offset}"[:200]
    if (await conn.execute(sa.select(outbox.c.id).where(outbox.c.event_id == dlq_id))).first() is None:
        await _queue_dead_letter(conn, record, reason, now, dlq_id, dead_letter_topic)


async def _is_parked(conn: AsyncConnection, record: FailedRecord) -> bool:
    query = sa.select(parked_events.c.id).where(
        parked_events.c.consumer == record.consumer,
        parked_events.c.topic == record.topic,
        parked_events.c.partition == record.partition,
        parked_events.c.offset == record.offset,
    )
    return (await conn.execute(query)).first() is not None


async def _insert_parked(conn: AsyncConnection, record: FailedRecord, reason: str, now: str, *, blocking: bool) -> None:
    await conn.execute(
        parked_events.insert().values(
            consumer=record.consumer,
            stream_id=record.stream_id,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            event_id=record.event_id,
            reason=reason,
            headers=orjson.dumps(_header_text(record.headers)).decode(),
            value=record.value,
            parked_at=now,
            blocking=blocking,
        )
    )


async def _queue_dead_letter(
    conn: AsyncConnection, record: FailedRecord, reason: str, now: str, dlq_id: str, dead_letter_topic: str
) -> None:
    """Through the outbox, in the consumer's transaction: the dead-letter record cannot be lost either."""
    dlq_headers = [
        *_header_text(record.headers),
        ["dlq_reason", reason],
        ["dlq_consumer", record.consumer],
        ["dlq_origin", f"{record.topic}/{record.partition}/{record.offset}"],
    ]
    await conn.execute(
        outbox.insert().values(
            event_id=dlq_id,
            topic=dead_letter_topic,
            key=record.stream_id,
            headers=orjson.dumps(dlq_headers).decode(),
            value=record.value or b"",
            created_at=now,
        )
    )


async def parked_streams(conn: AsyncConnection, consumer: str) -> set[str]:
    query = sa.select(parked_events.c.stream_id).where(parked_events.c.consumer == consumer).distinct()
    return {row.stream_id for row in await conn.execute(query)}
