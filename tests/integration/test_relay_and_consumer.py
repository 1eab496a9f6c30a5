"""The outbox relay and the consumer runner against the real broker: order, exactly-once effects, dead letters."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.events import batch_events as ev
from shared.events.envelope import Envelope, encode_data, from_record, to_headers
from shared.messaging.consumer import ConsumerStats, Handler, ProjectionConsumer
from shared.messaging.own_events import SkipsOwnStoredEvents
from shared.messaging.relay import OutboxRelay, make_producer
from shared.messaging.topics import ensure_topics
from shared.settings import Settings
from shared.store.database import Database
from shared.store.event_store import EventStore, StreamAppend, TopicNames
from shared.store.schema import consumer_positions, outbox, parked_events, processed_events
from tests.harness import wait_until
from tests.store.test_event_store_contract import envelope
from tests.unit import lifecycle_builders as b


@pytest.fixture
async def settings(kafka_bootstrap: str, topic_prefix: str) -> Settings:
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix, topic_partitions=3)
    await ensure_topics(settings)
    return settings


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


async def test_own_stored_events_are_recorded_without_the_handler_and_a_restart_reapplies_nothing(
    settings: Settings, database: Database
) -> None:
    """The relay's own events come back: recorded as processed, the position moves past them, the handler is
    not called. An own-source event the store does not hold, and a second delivery, take the ordinary path."""
    store = EventStore("pledge", TopicNames(settings.batch_topic, settings.reference_topic))
    own = [envelope("b1", b.pledged()), envelope("b1", b.received()), envelope("b2", b.pledged())]
    for stream_id, version, event in (("b1", 0, own[0]), ("b1", 1, own[1]), ("b2", 0, own[2])):
        async with database.transaction() as conn:
            await store.append(conn, [StreamAppend(stream_id, version, [event])])
    not_stored = envelope("b3", b.pledged())
    applied: list[str] = []
    producer = make_producer(settings)
    await producer.start()
    try:
        assert await OutboxRelay(database, producer).publish_pending() == 3
        async with database.read() as conn:
            first_copy = (await conn.execute(sa.select(outbox).where(outbox.c.event_id == own[0].id))).one()
        await produce(producer, settings.batch_topic, "b3", to_headers(not_stored), encode_data(not_stored))
        await produce(producer, settings.batch_topic, "b1", to_headers(own[0]), first_copy.value)  # published twice
        stats = await _consume_until(settings, database, store, applied, records=5)
        assert (stats.applied, stats.duplicates) == (4, 1)
        assert applied == [not_stored.id], "the handler saw only the event the store did not hold"
        assert await _processed_ids(database) == {e.id for e in [*own, not_stored]}

        later = envelope("b4", b.pledged())
        await produce(producer, settings.batch_topic, "b4", to_headers(later), encode_data(later))
        restarted = await _consume_until(settings, database, store, applied, records=6)
        assert (restarted.applied, restarted.duplicates) == (1, 0), "the restart resumed at the stored position"
        assert applied == [not_stored.id, later.id]
    finally:
        await producer.stop()


async def _consume_until(
    settings: Settings, database: Database, store: EventStore, applied: list[str], *, records: int
) -> ConsumerStats:
    handler = SkipsOwnStoredEvents(recording_handler(applied), store.source)
    consumer = ProjectionConsumer("test.own", [settings.batch_topic], handler, database, settings)
    await consumer.start()
    try:
        await wait_until(lambda: _positions_total(database, records), what=f"positions past {records} records")
    finally:
        await consumer.stop()
    return consumer.stats


async def _positions_total(database: Database, expected: int) -> bool:
    async with database.read() as conn:
        total = (await conn.execute(sa.select(sa.func.sum(consumer_positions.c.next_offset)))).scalar()
    return bool(total == expected)


async def _processed_ids(database: Database) -> set[str]:
    async with database.read() as conn:
        query = sa.select(processed_events.c.event_id).where(processed_events.c.consumer == "test.own")
        return {row.event_id for row in await conn.execute(query)}
