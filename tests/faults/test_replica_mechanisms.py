"""The two mechanisms that keep replicas of one service correct, each on its own, in process, on both backends:
a relay that lost its lease never marks rows (the new holder publishes them again, in order), and a consumer that
lost its partition never applies a record twice nor out of order.
"""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from aiokafka import ConsumerRecord, TopicPartition
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.events import batch_events as ev
from shared.events.envelope import Envelope, encode_data, to_headers
from shared.events.registry import payload_data
from shared.messaging.consumer import Handler, ProjectionConsumer
from shared.messaging.relay import OutboxRelay, make_producer
from shared.messaging.relay_lease import RelayLease
from shared.messaging.topics import ensure_topics
from shared.projections.batch_view import replicate_batches
from shared.settings import Settings
from shared.store.database import Database
from shared.store.event_store import EventStore, StreamAppend, TopicNames
from shared.store.schema import consumer_positions, parked_events
from tests.faults.replica_support import batch_streams
from tests.harness import wait_until
from tests.unit import lifecycle_builders as b


def envelope(stream_id: str, payload: ev.Payload) -> Envelope:
    data = payload_data(payload)
    return Envelope(payload.event_type, "pledge", stream_id, data, "donor:xiaomi", correlation_id=stream_id)


async def append_lifecycle(database: Database, store: EventStore, stream_id: str, count: int) -> list[str]:
    payloads = [b.pledged(), b.received(), b.inspected()][:count]
    written = []
    for version, payload in enumerate(payloads):
        async with database.transaction() as conn:
            written += await store.append(conn, [StreamAppend(stream_id, version, [envelope(stream_id, payload)])])
    return [e.id for e in written]


async def test_a_replaced_relay_never_marks_rows_and_the_new_holder_publishes_them_again_in_order(
    database: Database, kafka_bootstrap: str, topic_prefix: str
) -> None:
    """Replica A sends a round, pauses past its lease, B takes the lease: A must not mark the rows sent, B sends
    them again, and on the log the first copies stay in stream order while the consumer drops the second ones."""
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix, topic_partitions=2)
    await ensure_topics(settings)
    store = EventStore("pledge", TopicNames(settings.batch_topic, settings.reference_topic))
    producer = make_producer(settings)
    await producer.start()
    try:
        first = await append_lifecycle(database, store, "lease-1", 2)
        lease_a, lease_b = (RelayLease(database, "pledge.outbox", seconds=1.0, owner=owner) for owner in "AB")
        relay_a = OutboxRelay(database, producer, lease=lease_a)
        relay_b = OutboxRelay(database, producer, lease=lease_b)
        assert await relay_a.publish_pending() == 2 and await relay_b.publish_pending() == 0, "only the holder"
        later = await append_lifecycle(database, store, "lease-2", 3)
        rows = await relay_a._fetch_unsent()
        await relay_a._send(rows)  # A's round is under way when it stalls past its lease
        await wait_until(lease_b.ensure, what="B taking over the expired lease", deadline=20)
        assert not await relay_a._mark_sent(rows), "A lost the lease: it must not mark the rows sent"
        assert await relay_a.publish_pending() == 0 and await relay_b.publish_pending() == 3
    finally:
        await producer.stop()
    applied: list[str] = []
    consumer = ProjectionConsumer("lease.check", [settings.batch_topic], recording(applied), database, settings)
    await consumer.start()
    try:
        await wait_until(lambda: asyncio.sleep(0, len(applied) == 5), what="five events applied")
        await wait_until(lambda: asyncio.sleep(0, consumer.stats.duplicates == 3), what="three duplicates dropped")
    finally:
        await consumer.stop()
    assert [i for i in applied if i in later] == later and [i for i in applied if i in first] == first


def recording(applied: list[str]) -> Handler:
    async def handle(conn: AsyncConnection, event: Envelope, payload: ev.Payload) -> None:
        applied.append(event.id)

    return handle


def record(offset: int, event: Envelope, *, drop: str | None = None) -> ConsumerRecord[bytes, bytes]:
    headers = [(name, value) for name, value in to_headers(event) if name != drop]
    value, key = encode_data(event), event.subject.encode()
    return ConsumerRecord("t", 0, offset, 0, 0, key, value, None, len(key), len(value), headers)


async def test_a_replica_that_lost_its_partition_never_applies_a_record_twice_nor_out_of_order(
    database: Database,
) -> None:
    """A rebalance can leave the old owner of a partition applying a batch it polled before, while the new owner
    applies the same records. Whichever commits second skips what the first applied (stored position), and sees
    the streams the first parked, so no record is applied twice and none overtakes a parked one."""
    settings = Settings(topic_prefix="zombie")
    store = EventStore("warehouse", TopicNames("t", "r"))
    live, zombie = (
        ProjectionConsumer("group", ["t"], replicate_batches(store), database, settings, lock_writes=store.lock_writes)
        for _ in range(2)
    )
    s, t, u = "batch-s", "batch-t", "batch-u"
    records = [
        record(0, envelope(s, b.pledged())),
        record(1, envelope(t, b.pledged()), drop="ce_actor"),  # poison: T is parked from here on
        record(2, envelope(t, b.pledged())),
        record(3, envelope(s, b.received())),
        record(4, envelope(u, b.pledged())),
        record(5, envelope(u, b.received())),
        record(6, envelope(t, b.received())),
        record(7, envelope(s, b.inspected())),
    ]
    tp = TopicPartition("t", 0)
    await live._apply_partition_batch(tp, records[0:5])
    await zombie._apply_partition_batch(tp, records[2:5])  # polled before the rebalance; knows nothing parked
    await zombie._apply_partition_batch(tp, records[3:8])  # overlaps: only offsets 5..7 are new
    await live._apply_partition_batch(tp, records[5:8])  # now the stale one: everything was applied
    streams = await batch_streams(database)
    assert {k: len(v) for k, v in streams.items()} == {s: 3, u: 2}, "T never applied, nothing twice"
    async with database.read() as conn:
        parked = [row.offset for row in await conn.execute(sa.select(parked_events).order_by(parked_events.c.offset))]
        position = (await conn.execute(sa.select(consumer_positions.c.next_offset))).scalar()
    assert parked == [1, 2, 6] and position == 8
