"""The outbox relay and the consumer runner against the real broker: order, exactly-once effects, dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.events import batch_events as ev
from shared.events.envelope import Envelope, encode_data, from_record, to_headers
from shared.messaging.consumer import Handler, ProjectionConsumer
from shared.messaging.relay import OutboxRelay, make_producer
from shared.messaging.topics import ensure_topics
from shared.settings import Settings
from shared.store.database import Database
from shared.store.event_store import EventStore, StreamAppend, TopicNames
from shared.store.migrations import upgrade
from shared.store.schema import consumer_positions, outbox, parked_events
from tests.harness import wait_until
from tests.store.test_event_store_contract import envelope
from tests.unit import lifecycle_builders as b

PLEDGE_MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "pledge" / "migrations"


@pytest.fixture
async def settings(kafka_bootstrap: str, topic_prefix: str) -> Settings:
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix, topic_partitions=3)
    await ensure_topics(settings)
    return settings


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database.connect(database_url)
    await upgrade(db, PLEDGE_MIGRATIONS)
    yield db
    await db.dispose()


async def read_topic(settings: Settings, topic: str, expected: int) -> list[Envelope]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    found: list[Envelope] = []
    try:
        async with asyncio.timeout(30):
            while len(found) < expected:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    found.extend(from_record(r.headers, r.value) for r in records)
    finally:
        await consumer.stop()
    return found


async def test_relay_publishes_committed_events_in_stream_order_exactly_once(
    settings: Settings, database: Database
) -> None:
    store = EventStore("pledge", TopicNames(settings.batch_topic, settings.reference_topic))
    lifecycle = b.full_lifecycle(100)
    for version, payload in enumerate(lifecycle):
        async with database.transaction() as conn:
            await store.append(conn, [StreamAppend("b1", version, [envelope("b1", payload)])])
    producer = make_producer(settings)
    await producer.start()
    try:
        relay = OutboxRelay(database, producer, batch_size=4)
        assert await relay.publish_pending() == len(lifecycle)
        assert await relay.publish_pending() == 0, "a second round publishes nothing"
        assert await relay.backlog() == 0
    finally:
        await producer.stop()
    published = await read_topic(settings, settings.batch_topic, len(lifecycle))
    assert [e.type for e in published] == [p.event_type for p in lifecycle]
    assert [e.sequence for e in published] == list(range(1, len(lifecycle) + 1))


def recording_handler(applied: list[str]) -> Handler:
    async def handle(conn: AsyncConnection, envelope: Envelope, payload: ev.Payload) -> None:
        applied.append(envelope.id)

    return handle


async def produce(
    producer: AIOKafkaProducer, topic: str, key: str, headers: list[tuple[str, bytes]], value: bytes
) -> None:
    await producer.send_and_wait(topic, value=value, key=key.encode(), headers=headers)


async def test_consumer_applies_once_parks_poison_and_lets_other_batches_flow(
    settings: Settings, database: Database
) -> None:
    applied: list[str] = []
    consumer = ProjectionConsumer(
        "test.projection", [settings.batch_topic], recording_handler(applied), database, settings
    )
    good = envelope("healthy", b.pledged())
    poison_headers = [(n, v) for n, v in to_headers(envelope("sick", b.pledged())) if n != "ce_actor"]
    behind = envelope("sick", b.received())
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    await consumer.start()
    try:
        await produce(producer, settings.batch_topic, "sick", poison_headers, b'{"x": 1}')
        await produce(producer, settings.batch_topic, "sick", to_headers(behind), encode_data(behind))
        for _ in range(2):  # the same event delivered twice
            await produce(producer, settings.batch_topic, "healthy", to_headers(good), encode_data(good))
        await wait_until(lambda: _parked_count(database, 2), what="two parked events")
        await wait_until(lambda: asyncio.sleep(0, result=good.id in applied), what="healthy event applied")
    finally:
        await consumer.stop()
        await producer.stop()
    assert applied == [good.id], "the duplicate was dropped and the parked events were not applied"
    async with database.read() as conn:
        reasons = [r.reason for r in await conn.execute(sa.select(parked_events).order_by(parked_events.c.id))]
        dead_letters = (await conn.execute(sa.select(outbox).where(outbox.c.topic == settings.dead_letter_topic))).all()
        positions = (await conn.execute(sa.select(consumer_positions))).all()
    assert "missing CloudEvents header(s): ce_actor" in reasons[0]
    assert "parked behind an earlier event" in reasons[1]
    assert len(dead_letters) == 2, "each parked record is queued for the dead-letter topic"
    assert sum(p.next_offset for p in positions) == 4, "positions cover every record, parked ones included"


async def _parked_count(database: Database, expected: int) -> bool:
    async with database.read() as conn:
        found = (await conn.execute(sa.select(sa.func.count()).select_from(parked_events))).scalar()
    return found == expected
