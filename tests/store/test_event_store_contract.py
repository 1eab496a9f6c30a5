"""One contract for the event store, held on SQLite and on PostgreSQL alike (the `database_url` fixture)."""

from __future__ import annotations

import asyncio
import itertools

import orjson
import pytest
import sqlalchemy as sa

from shared.events import batch_events as ev
from shared.events.envelope import GENESIS_HASH, Envelope
from shared.events.registry import payload_data
from shared.store.database import Database
from shared.store.event_store import ConcurrencyConflict, EventStore, StreamAppend, TopicNames
from shared.store.schema import chain_head, events, outbox
from tests.unit import lifecycle_builders as b

TOPICS = TopicNames(batch="test.batch-events", reference="test.reference-events")


@pytest.fixture
def store() -> EventStore:
    return EventStore("pledge", TOPICS)


def envelope(stream_id: str, payload: ev.Payload, actor: str = "admin:tester") -> Envelope:
    return Envelope(
        type=payload.event_type,
        source="pledge",
        subject=stream_id,
        data=payload_data(payload),
        actor=actor,
        correlation_id="corr",
    )


async def count(db: Database, table: sa.Table) -> int:
    async with db.read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar() or 0)


async def test_append_then_read_back_in_order(database: Database, store: EventStore) -> None:
    first, second = envelope("b1", b.pledged()), envelope("b1", b.received())
    async with database.transaction() as conn:
        await store.append(conn, [StreamAppend("b1", 0, [first])])
    async with database.transaction() as conn:
        await store.append(conn, [StreamAppend("b1", 1, [second])])
    async with database.read() as conn:
        stored = await store.load(conn, "b1")
    assert [e.version for e in stored] == [1, 2]
    assert [e.envelope.id for e in stored] == [first.id, second.id]
    assert stored[1].payload() == b.received()
    assert stored[0].envelope.data == first.data and stored[0].local


async def test_two_concurrent_writers_exactly_one_wins(database: Database, store: EventStore) -> None:
    async with database.transaction() as conn:
        await store.append(conn, [StreamAppend("b1", 0, [envelope("b1", b.pledged())])])

    async def write(actor: str) -> str:
        async with database.transaction() as conn:
            await store.append(conn, [StreamAppend("b1", 1, [envelope("b1", b.received(), actor)])])
        return actor

    results = await asyncio.gather(write("operator:a"), write("operator:b"), return_exceptions=True)
    winners = [r for r in results if isinstance(r, str)]
    losers = [r for r in results if isinstance(r, ConcurrencyConflict)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert "reload and try again" in losers[0].message
    async with database.read() as conn:
        stored = await store.load(conn, "b1")
    assert [e.envelope.actor for e in stored] == ["admin:tester", winners[0]]


async def test_a_stale_expected_version_is_refused_and_nothing_is_overwritten(
    database: Database, store: EventStore
) -> None:
    original = envelope("b1", b.pledged())
    async with database.transaction() as conn:
        await store.append(conn, [StreamAppend("b1", 0, [original])])
    with pytest.raises(ConcurrencyConflict, match="is at version 1, not 0"):
        async with database.transaction() as conn:
            await store.append(conn, [StreamAppend("b1", 0, [envelope("b1", b.pledged(5))])])
    async with database.read() as conn:
        stored = await store.load(conn, "b1")
    assert [e.envelope.id for e in stored] == [original.id]
    assert await count(database, outbox) == 1


async def test_outbox_rows_are_written_with_the_events_in_one_transaction(
    database: Database, store: EventStore
) -> None:
    written = [envelope("b1", b.pledged()), envelope("pledge-1", b.pledged())]
    async with database.transaction() as conn:
        await store.append(conn, [StreamAppend("b1", 0, written[:1]), StreamAppend("pledge-1", 0, written[1:])])
    async with database.read() as conn:
        rows = (await conn.execute(sa.select(outbox).order_by(outbox.c.id))).all()
    assert [row.event_id for row in rows] == [e.id for e in written]
    assert {row.topic for row in rows} == {TOPICS.batch}
    assert [row.key for row in rows] == ["b1", "pledge-1"]
    assert all(row.sent_at is None for row in rows)
    headers = dict(orjson.loads(rows[0].headers))
    assert headers["ce_id"] == written[0].id and headers["ce_sequence"] == "1"


async def test_a_failed_transaction_leaves_neither_events_nor_outbox_rows(
    database: Database, store: EventStore
) -> None:
    with pytest.raises(RuntimeError, match="crash after append"):
        async with database.transaction() as conn:
            await store.append(conn, [StreamAppend("b1", 0, [envelope("b1", b.pledged())])])
            raise RuntimeError("crash after append, before commit")
    assert await count(database, events) == 0
    assert await count(database, outbox) == 0
    assert await count(database, chain_head) == 0


async def test_the_hash_chain_is_gap_free_across_streams(database: Database, store: EventStore) -> None:
    for number in range(3):
        async with database.transaction() as conn:
            await store.append(conn, [StreamAppend(f"b{number}", 0, [envelope(f"b{number}", b.pledged())])])
    async with database.read() as conn:
        stored = await store.read_all(conn)
    assert [e.envelope.sequence for e in stored] == [1, 2, 3]
    assert stored[0].envelope.prev_hash == GENESIS_HASH
    for previous, current in itertools.pairwise(stored):
        assert current.envelope.prev_hash == previous.envelope.content_hash()


async def test_replicated_events_are_kept_once(database: Database, store: EventStore) -> None:
    foreign = Envelope(
        type=b.pledged().event_type,
        source="other",
        subject="b9",
        data=payload_data(b.pledged()),
        actor="donor:x",
        correlation_id="c",
        sequence=1,
        prev_hash=GENESIS_HASH,
    )
    async with database.transaction() as conn:
        assert await store.replicate(conn, foreign)
        assert not await store.replicate(conn, foreign)
    async with database.read() as conn:
        stored = await store.load(conn, "b9")
    assert len(stored) == 1 and not stored[0].local
    assert await count(database, outbox) == 0, "replicated events are never republished"
