"""Where each consumer stands, kept in the service's own database in the same transaction as its effects.

Because the position and the projection change commit together, a crash can never leave one without the other:
on restart the consumer seeks to the stored position and applies nothing twice. The processed-event ids catch the
duplicates the relay may publish after a crash.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.store.schema import consumer_positions, processed_events


async def load_positions(conn: AsyncConnection, consumer: str) -> dict[tuple[str, int], int]:
    query = sa.select(consumer_positions).where(consumer_positions.c.consumer == consumer)
    return {(row.topic, row.partition): int(row.next_offset) for row in await conn.execute(query)}


async def advance_position(
    conn: AsyncConnection, consumer: str, topic: str, partition: int, expected: int, next_offset: int
) -> bool:
    """Move the stored position from exactly `expected` to `next_offset`; False (and nothing changed) if it is
    stored elsewhere or not at all. The common case of a batch that starts where the last one ended then costs
    one statement, where reading the position first and saving it after cost two."""
    where = (
        (consumer_positions.c.consumer == consumer)
        & (consumer_positions.c.topic == topic)
        & (consumer_positions.c.partition == partition)
        & (consumer_positions.c.next_offset == expected)
    )
    moved = await conn.execute(consumer_positions.update().where(where).values(next_offset=next_offset))
    return bool(moved.rowcount == 1)


async def save_position(conn: AsyncConnection, consumer: str, topic: str, partition: int, next_offset: int) -> None:
    where = (
        (consumer_positions.c.consumer == consumer)
        & (consumer_positions.c.topic == topic)
        & (consumer_positions.c.partition == partition)
    )
    updated = await conn.execute(consumer_positions.update().where(where).values(next_offset=next_offset))
    if updated.rowcount == 0:
        await conn.execute(
            consumer_positions.insert().values(
                consumer=consumer, topic=topic, partition=partition, next_offset=next_offset
            )
        )


async def mark_processed(conn: AsyncConnection, consumer: str, event_id: str) -> bool:
    """Record the event id; False if this consumer has applied it before (a duplicate to drop)."""
    try:
        async with conn.begin_nested():
            await conn.execute(processed_events.insert().values(consumer=consumer, event_id=event_id))
    except IntegrityError:
        return False
    return True


async def forget_consumer(conn: AsyncConnection, consumer: str) -> None:
    """For a rebuild from offset zero: the read model is cleared by the caller in the same transaction."""
    await conn.execute(consumer_positions.delete().where(consumer_positions.c.consumer == consumer))
    await conn.execute(processed_events.delete().where(processed_events.c.consumer == consumer))
