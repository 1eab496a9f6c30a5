"""Writes the batch topic the replay benchmark reads: valid, hash-chained lifecycles, produced in big batches.

Shape of the log, and why:
* Every batch lives a realistic lifecycle (pledged -> received -> inspected -> allocated -> picked -> dispatched ->
  arrived -> handed over -> departed -> delivered -> receipt confirmed); one unit in three is split on the way,
  which adds a child batch and its own five events. That is 40 events per 4 batches, ~10 events per batch.
* The number of batches is PROPORTIONAL to the number of events. A fixed number of batches would make streams
  grow with the log, which no real batch does (a lifecycle ends), and would turn a replay benchmark into a
  long-stream benchmark.
* At most WINDOW units are in flight at any point of the log: units start in groups, and the events of a group
  are interleaved step by step (as many batches move at once in reality). So the number of OPEN batches, which
  is what a streaming replay must keep in memory, is the same at 100k and at 1M events.
* Each service signs its own hash chain (sequence + previous hash), exactly as EventStore.append does, and the
  Kafka record timestamp is the event time, so the auditor can verify the chains and merge by timestamp.

Produce path: records go straight into per-partition BatchBuilders (no future per record), partitioned with the
same murmur2 hash as the default partitioner, so the log is where the relay would have put it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import murmur2

from shared.domain.batch_fold import fold
from shared.domain.batch_state import BatchStatus
from shared.events.batch_events import Payload
from shared.events.envelope import GENESIS_HASH, Envelope, encode_data, new_event_id, to_headers
from shared.events.registry import parse_payload
from shared.messaging.topics import ensure_topics
from shared.settings import Settings

GENERATOR_VERSION = 1
WINDOW = 1000
EPOCH = datetime(2020, 1, 24, tzinfo=UTC)
STEP = timedelta(milliseconds=1)
PRODUCE_BATCH_BYTES = 512 * 1024
T = "org.aidtrail.batch."

Step = tuple[str, str, str, dict[str, Any]]  # (batch id, event type, source, data)


def log_prefix(size: int) -> str:
    """Topic prefix of the log of `size` events; a new generator version never reuses an older log."""
    return f"benchlog-g{GENERATOR_VERSION}-n{size}"


def _pledged(unit: int, quantity: int, recipient: str) -> dict[str, Any]:
    return {
        "pledge_id": f"pledge-{unit}",
        "donor_id": f"donor-{unit % 97}",
        "line_no": 1,
        "item": "n95-mask",
        "category": "medical",
        "quantity": quantity,
        "unit": "piece",
        "standard": "N95",
        "warehouse_id": "wh-wuhan-1",
        "designated_recipient_id": recipient,
        "purpose": "frontline protection",
    }


def _intake(quantity: int) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (
            "received.v2",
            "warehouse",
            {
                "site_id": "wh-wuhan-1",
                "quantity_received": quantity,
                "shortfall": 0,
                "shortfall_reason": None,
                "lot": "L2020-01",
                "expiry": "2023-01-01",
                "condition": "good",
            },
        ),
        (
            "inspected.v1",
            "warehouse",
            {
                "inspector": "qc.zhang",
                "standard_checked": "N95",
                "accepted": quantity,
                "rejected": 0,
                "quarantined": 0,
                "evidence_refs": ["photo-1"],
                "notes": None,
            },
        ),
    ]


def _allocated(allocation: str, recipient: str, quantity: int) -> tuple[str, str, dict[str, Any]]:
    data = {"allocation_id": allocation, "need_id": f"need-{allocation}", "recipient_id": recipient}
    return ("allocated.v1", "warehouse", {**data, "quantity": quantity, "priority_rank": 1})


def _picked(allocation: str, quantity: int) -> tuple[str, str, dict[str, Any]]:
    return ("picked.v1", "warehouse", {"allocation_id": allocation, "quantity": quantity, "picker": "op.li"})


def _journey(shipment: str, recipient: str, quantity: int, via_hub: bool) -> list[tuple[str, str, dict[str, Any]]]:
    """Dispatch to the hub (or straight to the hospital), across the hub with a carrier change, delivery, receipt."""
    first_stop = "hub-xiantao" if via_hub else "site-jinyintan"
    leg = {"shipment_id": shipment, "leg_no": 1}
    steps: list[tuple[str, str, dict[str, Any]]] = [
        (
            "dispatched.v1",
            "dispatch",
            {**leg, "from_site_id": "wh-wuhan-1", "to_site_id": first_stop, "carrier": "SF", "quantity": quantity},
        )
    ]
    if via_hub:
        hub = {"shipment_id": shipment, "hub_site_id": "hub-xiantao"}
        steps += [
            ("arrived.v1", "dispatch", {**hub, "leg_no": 1}),
            ("handed-over.v1", "dispatch", {**hub, "from_carrier": "SF", "to_carrier": "JD", "vehicle": "E-1"}),
            (
                "departed.v1",
                "dispatch",
                {**hub, "leg_no": 2, "to_site_id": "site-jinyintan", "carrier": "JD", "vehicle": "E-1"},
            ),
        ]
    receipt = {"recipient_id": recipient, "quantity_received": quantity, "quantity_damaged": 0}
    return [
        *steps,
        (
            "delivered.v1",
            "dispatch",
            {"shipment_id": shipment, "site_id": "site-jinyintan", "recipient_id": recipient, "quantity": quantity},
        ),
        ("receipt-confirmed.v1", "recipient", {**receipt, "signed_by": "dr.wang", "discrepancy_reason": None}),
    ]


def _steps(batch_id: str, events: list[tuple[str, str, dict[str, Any]]]) -> list[Step]:
    return [(batch_id, T + name, source, data) for name, source, data in events]


def unit_events(unit: int) -> list[Step]:
    """One pledge line's lifecycle, in causal order; every third unit splits off a child batch on the way."""
    recipient = "jinyintan-hospital"
    parent = f"b{unit:08d}"
    quantity = 1000 + unit % 500
    start = [
        (parent, T + "pledged.v1", "pledge", _pledged(unit, quantity, recipient)),
        *_steps(parent, _intake(quantity)),
    ]
    if unit % 3 != 2:
        rest = [_allocated(f"a{unit}", recipient, quantity), _picked(f"a{unit}", quantity)]
        return start + _steps(parent, rest + _journey(f"s{unit}", recipient, quantity, via_hub=True))
    return start + _split_unit(unit, parent, recipient, quantity)


def _split_unit(unit: int, parent: str, recipient: str, quantity: int) -> list[Step]:
    child, part = f"{parent}.1", quantity // 4
    split = ("split.v1", "warehouse", {"child_batch_id": child, "allocation_id": f"a{unit}c", "quantity": part})
    created = {
        "parent_batch_id": parent,
        "root_batch_id": parent,
        "pledge_id": f"pledge-{unit}",
        "donor_id": f"donor-{unit % 97}",
        "item": "n95-mask",
        "category": "medical",
        "unit": "piece",
        "standard": "N95",
        "quantity": part,
        "site_id": "wh-wuhan-1",
        "lot": "L2020-01",
        "expiry": "2023-01-01",
        "designated_recipient_id": recipient,
        "allocation_id": f"a{unit}c",
        "need_id": f"need-a{unit}c",
        "recipient_id": recipient,
    }
    before = _steps(parent, [_allocated(f"a{unit}c", recipient, part), split])
    birth = [(child, T + "split-created.v1", "warehouse", created)]
    rest = quantity - part
    journey = _journey(f"s{unit}", recipient, rest, via_hub=True)
    after = _steps(parent, [_allocated(f"a{unit}", recipient, rest), _picked(f"a{unit}", rest), *journey])
    child_rest = _steps(child, [_picked(f"a{unit}c", part), *_journey(f"s{unit}c", recipient, part, via_hub=False)])
    return before + birth + after + child_rest


def interleaved(total: int, window: int = WINDOW) -> Iterator[Step]:
    """`total` events: units start `window` at a time and their events interleave step by step."""
    emitted, unit = 0, 0
    while emitted < total:
        group = [unit_events(u) for u in range(unit, unit + window)]
        unit += window
        for step in range(max(len(events) for events in group)):
            for events in group:
                if step < len(events):
                    yield events[step]
                    emitted += 1
                    if emitted == total:
                        return


@dataclass
class _Chain:
    sequence: int = 0
    head: str = GENESIS_HASH


class ChainedEnvelopes:
    """Turns steps into envelopes signed into each source's hash chain, as EventStore.append would."""

    def __init__(self) -> None:
        self.chains: dict[str, _Chain] = {}
        self.count = 0

    def envelope(self, step: Step) -> Envelope:
        batch_id, event_type, source, data = step
        chain = self.chains.setdefault(source, _Chain())
        chain.sequence += 1
        envelope = Envelope(
            type=event_type,
            source=source,
            subject=batch_id,
            data=data,
            actor=f"bench.{source}",
            correlation_id=f"unit-{batch_id.split('.')[0]}",
            id=new_event_id(),
            time=EPOCH + STEP * self.count,
            sequence=chain.sequence,
            prev_hash=chain.head,
        )
        chain.head = envelope.content_hash()
        self.count += 1
        return envelope


def check_lifecycles(units: int = 30) -> int:
    """Fold the first `units` lifecycles with the shared fold; raises if the generator ever writes an invalid log."""
    streams: dict[str, list[Payload]] = {}
    for batch_id, event_type, _source, data in (step for unit in range(units) for step in unit_events(unit)):
        streams.setdefault(batch_id, []).append(parse_payload(event_type, data))
    for batch_id, payloads in streams.items():
        state = fold(payloads, batch_id)
        if state is None or state.status is not BatchStatus.CONFIRMED:
            raise AssertionError(f"generated lifecycle of {batch_id} ends {state and state.status}, not confirmed")
    return sum(len(p) for p in streams.values())


def partition_for(key: bytes, partitions: int) -> int:
    """The default partitioner's choice, so the log looks exactly as the relay would have written it."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


class _PartitionedWriter:
    """One open BatchBuilder per partition; a full builder is sent and replaced without waiting for its ack."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, partitions: int):
        self.producer = producer
        self.topic = topic
        self.partitions = partitions
        self.builders: dict[int, Any] = {}
        self.pending: list[asyncio.Future[Any]] = []

    async def append(self, envelope: Envelope) -> None:
        key = envelope.subject.encode()
        partition = partition_for(key, self.partitions)
        record = {
            "timestamp": int(envelope.time.timestamp() * 1000),
            "key": key,
            "value": encode_data(envelope),
            "headers": to_headers(envelope),
        }
        builder = self.builders.get(partition) or self.producer.create_batch()
        if builder.append(**record) is None:
            await self._send(partition, builder)
            builder = self.producer.create_batch()
            builder.append(**record)
        self.builders[partition] = builder

    async def _send(self, partition: int, builder: Any) -> None:
        self.pending.append(await self.producer.send_batch(builder, self.topic, partition=partition))
        if len(self.pending) >= 64:
            await asyncio.gather(*self.pending)
            self.pending.clear()

    async def flush(self) -> None:
        for partition, builder in self.builders.items():
            await self._send(partition, builder)
        self.builders.clear()
        await asyncio.gather(*self.pending)
        self.pending.clear()


async def topic_size(settings: Settings, topic: str) -> int:
    """Records in `topic` (0 if it does not exist): the end offsets summed, start offsets being 0 (no retention)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, topic)
        if not partitions:
            return 0
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        return sum(ends.values())
    finally:
        await consumer.stop()


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Fresh metadata: `partitions_for_topic` only knows topics the client happened to cache (None otherwise)."""
    cluster = await consumer._client.fetch_all_metadata()
    return [TopicPartition(topic, p) for p in sorted(cluster.partitions_for_topic(topic) or ())]


async def write_log(settings: Settings, size: int) -> None:
    await ensure_topics(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", max_batch_size=PRODUCE_BATCH_BYTES, linger_ms=5
    )
    await producer.start()
    try:
        writer = _PartitionedWriter(producer, settings.batch_topic, settings.topic_partitions)
        chained = ChainedEnvelopes()
        for step in interleaved(size):
            await writer.append(chained.envelope(step))
        await writer.flush()
    finally:
        await producer.stop()


async def ensure_log(kafka_bootstrap: str, size: int, *, fresh: bool = False) -> tuple[Settings, bool]:
    """Settings whose batch topic holds exactly `size` generated events; True if it was written now.

    A complete log from an earlier run is reused (it is immutable and its name carries the generator version);
    an incomplete one (an interrupted run) is left alone and a new topic is written.
    """
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=log_prefix(size))
    existing = await topic_size(settings, settings.batch_topic)
    if existing == size and not fresh:
        return settings, False
    if existing or fresh:
        settings = settings.model_copy(update={"topic_prefix": f"{log_prefix(size)}-{uuid.uuid4().hex[:8]}"})
    await write_log(settings, size)
    return settings, True
