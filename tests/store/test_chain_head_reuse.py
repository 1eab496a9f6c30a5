"""The chain head read by `lock_writes` serves the transaction's first append once (one read of the row per
command), and nothing stale survives a second append or a savepoint that was rolled back."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from shared.events.envelope import GENESIS_HASH
from shared.store.database import Database
from shared.store.event_store import EventStore, StreamAppend, TopicNames
from tests.store.test_event_store_contract import envelope
from tests.unit import lifecycle_builders as b

TOPICS = TopicNames(batch="test.batch-events", reference="test.reference-events")


@contextmanager
def chain_head_reads(database: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "chain_head" in statement:
            seen.append(statement)

    event.listen(database.writer.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(database.writer.sync_engine, "before_cursor_execute", record)


async def test_a_command_reads_the_chain_head_once(database: Database) -> None:
    store = EventStore("pledge", TOPICS)
    async with database.transaction() as conn:  # the first append ever creates the row
        await store.append(conn, [StreamAppend("b0", 0, [envelope("b0", b.pledged())])])
    with chain_head_reads(database) as reads:
        async with database.transaction() as conn:
            await store.lock_writes(conn)
            await store.append(conn, [StreamAppend("b1", 0, [envelope("b1", b.pledged())])])
    assert len(reads) == 1


async def test_a_second_append_in_the_transaction_continues_the_chain(database: Database) -> None:
    store = EventStore("pledge", TOPICS)
    async with database.transaction() as conn:
        await store.lock_writes(conn)
        await store.append(conn, [StreamAppend("b1", 0, [envelope("b1", b.pledged())])])
        await store.append(conn, [StreamAppend("b2", 0, [envelope("b2", b.pledged())])])
    await assert_chain(database, store, 2)


async def test_an_append_rolled_back_to_a_savepoint_leaves_no_stale_head(database: Database) -> None:
    store = EventStore("pledge", TOPICS)
    async with database.transaction() as conn:
        await store.lock_writes(conn)
        with pytest.raises(RuntimeError):
            async with conn.begin_nested():
                await store.append(conn, [StreamAppend("b1", 0, [envelope("b1", b.pledged())])])
                raise RuntimeError("the handler failed after appending")
        await store.append(conn, [StreamAppend("b2", 0, [envelope("b2", b.pledged())])])
    await assert_chain(database, store, 1)


async def test_a_head_locked_in_an_earlier_transaction_is_not_used(database: Database) -> None:
    store = EventStore("pledge", TOPICS)
    async with database.transaction() as conn:
        await store.lock_writes(conn)  # and no append: the value stays behind on the pooled connection
    for number in range(2):
        async with database.transaction() as conn:
            await store.append(conn, [StreamAppend(f"b{number}", 0, [envelope(f"b{number}", b.pledged())])])
    await assert_chain(database, store, 2)


async def assert_chain(database: Database, store: EventStore, length: int) -> None:
    async with database.read() as conn:
        stored = await store.read_all(conn)
        head = (await conn.execute(sa.text("SELECT sequence, hash FROM chain_head"))).one()
    assert [e.envelope.sequence for e in stored] == list(range(1, length + 1))
    assert stored[0].envelope.prev_hash == GENESIS_HASH
    for previous, current in itertools.pairwise(stored):
        assert current.envelope.prev_hash == previous.envelope.content_hash()
    assert (head.sequence, head.hash) == (length, stored[-1].envelope.content_hash())
