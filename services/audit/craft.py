"""Crafts event logs on Kafka exactly as the services would write them, chain headers included, and lets a drill
tamper with them: for the auditor's tests, for demos, and for rehearsing what an investigation finds.

Each service's chain is built the way shared/store/event_store.py `append` builds it: sequence 1, 2, 3 ... and
`prev_hash` = the content hash of the service's previous event (GENESIS_HASH first). Records are produced with
explicit timestamps so that "as of T" replays can be tested against moments the caller controls.
"""

from __future__ import annotations

import asyncio
import heapq
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.audit.records import LogRecord, decode, merge_key, to_millis
from services.audit.replay import AuditOptions, AuditResult, TransitionHook, audit_records
from shared.events.batch_events import Payload
from shared.events.envelope import GENESIS_HASH, Envelope, encode_data, new_event_id, to_headers
from shared.events.registry import BATCH_EVENT_TYPES, payload_data
from shared.messaging.kafka_config import connection_options
from shared.messaging.topics import ensure_topics
from shared.settings import Settings

SEND_CHUNK = 5000


@dataclass(slots=True)
class CraftedRecord:
    topic: str
    key: str
    envelope: Envelope
    timestamp_ms: int
    value: bytes | None = None  # a tampered payload; None means the envelope's own data
    headers: list[tuple[str, bytes]] | None = None  # tampered headers; None means the envelope's own


@dataclass(slots=True)
class _Chain:
    sequence: int = 0
    prev_hash: str = GENESIS_HASH


@dataclass
class CraftedLog:
    """An ordered list of records to publish; `clock` advances by `step` per event unless a time is given."""

    settings: Settings
    clock: datetime = field(default_factory=lambda: datetime(2020, 2, 1, 8, 0, tzinfo=UTC))
    step: timedelta = timedelta(minutes=1)
    records: list[CraftedRecord] = field(default_factory=list)
    chains: dict[str, _Chain] = field(default_factory=dict)

    def emit(
        self, source: str, subject: str, payload: Payload, at: datetime | None = None, actor: str | None = None
    ) -> Envelope:
        """Append a correctly chained event of `source` about `subject` (a batch id or a reference entity id)."""
        return self.emit_data(source, subject, payload.event_type, payload_data(payload), at, actor)

    def emit_data(
        self,
        source: str,
        subject: str,
        event_type: str,
        data: dict[str, Any],
        at: datetime | None = None,
        actor: str | None = None,
    ) -> Envelope:
        """Like `emit` for any type and data, valid or not: the chain is correct, the content is the caller's."""
        moment = at or self.clock
        self.clock = moment + self.step
        chain = self.chains.setdefault(source, _Chain())
        chain.sequence += 1
        event_id = new_event_id()
        envelope = Envelope(
            type=event_type,
            source=source,
            subject=subject,
            data=data,
            actor=actor or f"operator:{source}-clerk",
            correlation_id=event_id,
            id=event_id,
            time=moment,
            sequence=chain.sequence,
            prev_hash=chain.prev_hash,
        )
        chain.prev_hash = envelope.content_hash()
        self.records.append(CraftedRecord(self.topic_for(event_type), subject, envelope, to_millis(moment)))
        return envelope

    def topic_for(self, event_type: str) -> str:
        """Batch events (known or not: `org.aidtrail.batch.*`) go to the batch topic, the rest to the reference."""
        is_batch = event_type in BATCH_EVENT_TYPES or event_type.startswith("org.aidtrail.batch.")
        return self.settings.batch_topic if is_batch else self.settings.reference_topic

    # --- tampering ------------------------------------------------------------------------------------------

    def index_of(self, event_id: str) -> int:
        return next(i for i, record in enumerate(self.records) if record.envelope.id == event_id)

    def drop(self, event_id: str) -> None:
        """Remove an event: its service's chain gets a gap."""
        del self.records[self.index_of(event_id)]

    def swap(self, first_id: str, second_id: str) -> None:
        """Exchange two records' positions (keep them on one partition: same key) without touching content."""
        i, j = self.index_of(first_id), self.index_of(second_id)
        a, b = self.records[i], self.records[j]
        self.records[i] = replace(b, timestamp_ms=a.timestamp_ms)
        self.records[j] = replace(a, timestamp_ms=b.timestamp_ms)

    def change_payload(self, event_id: str, **changes: Any) -> None:
        """Rewrite an event's payload in place, keeping its headers: what an operator editing the log would do."""
        record = self.records[self.index_of(event_id)]
        data = {**record.envelope.data, **changes}
        record.envelope = replace(record.envelope, data=data)
        record.value = encode_data(record.envelope)

    def duplicate(self, event_id: str, at: datetime | None = None) -> None:
        """Publish an event a second time, as the relay may after a crash."""
        record = self.records[self.index_of(event_id)]
        moment = to_millis(at) if at else self.records[-1].timestamp_ms + 1
        self.records.append(replace(record, timestamp_ms=moment))

    def inject(self, envelope: Envelope, at: datetime | None = None) -> None:
        """Append a record nobody's chain produced, with whatever headers the envelope has."""
        moment = to_millis(at) if at else self.records[-1].timestamp_ms + 1
        self.records.append(CraftedRecord(self.topic_for(envelope.type), envelope.subject, envelope, moment))

    # --- publishing -----------------------------------------------------------------------------------------

    async def publish(self) -> int:
        """Create the topics and produce every record in list order; returns how many were sent."""
        await create_topics(self.settings)
        return await publish_records(self.settings, self.records)


async def create_topics(settings: Settings, attempts: int = 4) -> None:
    """The project's topics; a busy broker may time out creating them, so a timeout is retried with backoff."""
    for attempt in range(1, attempts + 1):
        try:
            await ensure_topics(settings)
            return
        except (KafkaError, TimeoutError):
            if attempt == attempts:
                raise
            await asyncio.sleep(2**attempt)


def offline_records(records: list[CraftedRecord], partitions: int = 6) -> list[LogRecord]:
    """The records as the auditor would read them from Kafka, without Kafka: one partition per key (assigned in
    order of appearance), offsets in list order, merged by timestamp like the reader merges partitions."""
    partition_of: dict[tuple[str, str], int] = {}
    offsets: dict[tuple[str, int], int] = {}
    decoded = []
    for record in records:
        partition = partition_of.setdefault((record.topic, record.key), len(partition_of) % partitions)
        offset = offsets.get((record.topic, partition), 0)
        offsets[(record.topic, partition)] = offset + 1
        where = {"topic": record.topic, "partition": partition, "offset": offset, "timestamp": record.timestamp_ms}
        decoded.append(decode(SimpleNamespace(**where, key=record.key.encode(), **_raw_parts(record))))
    return _merged(decoded)


def _raw_parts(record: CraftedRecord) -> dict[str, Any]:
    args = _record_args(record)
    return {"value": args["value"], "headers": args["headers"]}


def _merged(records: list[LogRecord]) -> list[LogRecord]:
    """Merged exactly as LogReader merges: log order within a partition, the smallest head across them."""
    partitions: dict[tuple[str, int], list[LogRecord]] = {}
    for record in records:
        partitions.setdefault((record.topic, record.partition), []).append(record)
    return list(heapq.merge(*partitions.values(), key=merge_key))


def audit_offline(
    log: CraftedLog, options: AuditOptions | None = None, hook: TransitionHook | None = None
) -> AuditResult:
    """Audit a crafted log without Kafka, exactly as `replay` would audit it once published."""
    return audit_records(log.settings, offline_records(log.records), options, hook)


async def publish_records(settings: Settings, records: list[CraftedRecord]) -> int:
    """Batched sends without awaiting each delivery, then one flush: fast enough for 10^5 records."""
    producer = AIOKafkaProducer(
        **connection_options(settings), acks="all", enable_idempotence=True, linger_ms=20, max_batch_size=1 << 20
    )
    await producer.start()
    try:
        pending: list[asyncio.Future[Any]] = []
        for record in records:
            pending.append(await producer.send(record.topic, **_record_args(record)))
            if len(pending) >= SEND_CHUNK:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return len(records)


def _record_args(record: CraftedRecord) -> dict[str, Any]:
    return {
        "key": record.key.encode(),
        "value": record.value if record.value is not None else encode_data(record.envelope),
        "headers": record.headers if record.headers is not None else to_headers(record.envelope),
        "timestamp_ms": record.timestamp_ms,
    }
