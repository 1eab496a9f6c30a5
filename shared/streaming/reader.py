"""One client's reader: its own Kafka consumer over the batch and reference topics, feeding a bounded buffer.

The consumer is manually assigned every partition (no group, nothing committed): the position lives in the
SSE ids the client holds, not in Kafka or in this process. When filters need to know where batches belong, the
batch partitions are read from their beginning and the records before the start position only rebuild that
context, silently; so a resumed stream decides exactly as an uninterrupted one would have.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Literal

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from shared.domain.batch_state import BatchState
from shared.events.envelope import Envelope, EnvelopeError, from_record
from shared.messaging.kafka_config import connection_options
from shared.settings import Settings
from shared.streaming import position
from shared.streaming.config import StreamConfig
from shared.streaming.filters import BatchContexts, EventFilter

log = logging.getLogger(__name__)

StartAt = Literal["earliest", "latest"]
POLL_MS = 500


class TopicsMissing(RuntimeError):
    """The service has not created its topics yet; the client should retry."""


@dataclass
class StreamStats:
    """Per-app counters (`stream_stats(app.state)`): what a test asserts on and an operator may want to see."""

    open_streams: int = 0
    opened: int = 0
    overflows: int = 0
    peak_buffered: int = 0


@dataclass(frozen=True)
class StreamItem:
    """One matching event, and the stream's position just after it (its SSE id)."""

    envelope: Envelope
    offsets: dict[TopicPartition, int]


@dataclass
class StreamReader:
    settings: Settings
    config: StreamConfig
    event_filter: EventFilter
    stats: StreamStats
    visible: EventFilter | None = None
    queue: asyncio.Queue[StreamItem] = field(init=False)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    overflowed: bool = False
    failure: str | None = None
    _emit_from: dict[TopicPartition, int] = field(default_factory=dict)
    _contexts: BatchContexts = field(default_factory=BatchContexts)
    _consumer: AIOKafkaConsumer | None = None
    _task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(maxsize=self.config.buffer_size)

    @property
    def codes(self) -> position.TopicCodes:
        return position.TopicCodes(batch=self.settings.batch_topic, reference=self.settings.reference_topic)

    @property
    def needs_context(self) -> bool:
        return self.event_filter.needs_batch_context or bool(self.visible and self.visible.needs_batch_context)

    @property
    def finished(self) -> bool:
        return self._task is not None and self._task.done()

    @property
    def task(self) -> asyncio.Task[None]:
        assert self._task is not None, "start() the reader first"
        return self._task

    def encode(self, offsets: dict[TopicPartition, int]) -> str:
        return position.encode(offsets, self.codes)

    async def open(self, resume: dict[TopicPartition, int] | None, start_at: StartAt) -> None:
        """Connect, assign every partition and seek; afterwards `offsets` is where the stream starts."""
        self._consumer = AIOKafkaConsumer(
            **connection_options(self.settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_partition_fetch_bytes=self.config.max_partition_fetch_bytes,
            fetch_max_bytes=self.config.fetch_max_bytes,
            client_id=f"{self.settings.topic_prefix}.{self.settings.service}.sse",
        )
        await self._consumer.start()
        partitions = await self._partitions()
        self._consumer.assign(partitions)
        self.offsets = await self._start_offsets(partitions, resume, start_at)
        self._emit_from = dict(self.offsets)
        await self._seek(partitions)

    async def _partitions(self) -> list[TopicPartition]:
        assert self._consumer is not None
        return await topic_partitions(self._consumer, [self.settings.batch_topic, self.settings.reference_topic])

    async def _start_offsets(
        self, partitions: list[TopicPartition], resume: dict[TopicPartition, int] | None, start_at: StartAt
    ) -> dict[TopicPartition, int]:
        assert self._consumer is not None
        beginnings: dict[TopicPartition, int] = await self._consumer.beginning_offsets(partitions)
        if resume is not None:
            return {tp: resume.get(tp, beginnings[tp]) for tp in partitions}
        if start_at == "earliest":
            return dict(beginnings)
        ends: dict[TopicPartition, int] = await self._consumer.end_offsets(partitions)
        return dict(ends)

    async def _seek(self, partitions: list[TopicPartition]) -> None:
        assert self._consumer is not None
        warm_up = [tp for tp in partitions if tp.topic == self.settings.batch_topic and self.needs_context]
        if warm_up:
            await self._consumer.seek_to_beginning(*warm_up)
        for tp in partitions:
            if tp not in warm_up:
                self._consumer.seek(tp, self.offsets[tp])

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sse-reader")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop()

    async def _run(self) -> None:
        assert self._consumer is not None
        try:
            while True:
                batches = await self._consumer.getmany(timeout_ms=POLL_MS, max_records=self.config.buffer_size)
                for tp, records in batches.items():
                    for record in records:
                        if not await self._take(tp, record):
                            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the generator reports it to the client, which reconnects with its id
            log.warning("SSE reader failed", extra={"error": repr(exc)[:500]}, exc_info=True)
            self.failure = f"reading Kafka failed: {type(exc).__name__}"

    async def _take(self, tp: TopicPartition, record: ConsumerRecord) -> bool:
        """Handle one record; False when the buffer overflowed and this stream must end."""
        envelope = _decode(record)
        state: BatchState | None = None
        if envelope is not None and tp.topic == self.settings.batch_topic and self.needs_context:
            state = self._contexts.apply(envelope)
        if record.offset < self._emit_from.get(tp, 0):
            return True  # before the start position: context only
        if envelope is not None and self._wanted(envelope, state):
            item = StreamItem(envelope, {**self.offsets, tp: record.offset + 1})
            if not await self._put(item):
                return False
        self.offsets[tp] = record.offset + 1
        return True

    def _wanted(self, envelope: Envelope, state: BatchState | None) -> bool:
        if self.visible is not None and not self.visible.matches(envelope, state):
            return False
        return self.event_filter.matches(envelope, state)

    async def _put(self, item: StreamItem) -> bool:
        """Room in the buffer: enqueue at once. Full: wait up to the grace period, then give up (overflow)."""
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            if not await self._wait_for_room(item):
                self.overflowed = True
                self.stats.overflows += 1
                return False
        self.stats.peak_buffered = max(self.stats.peak_buffered, self.queue.qsize())
        return True

    async def _wait_for_room(self, item: StreamItem) -> bool:
        if self.config.overflow_grace_seconds == 0:
            return False
        try:
            await asyncio.wait_for(self.queue.put(item), timeout=self.config.overflow_grace_seconds)
        except TimeoutError:
            return False
        return True


async def topic_partitions(consumer: AIOKafkaConsumer, topics: list[str]) -> list[TopicPartition]:
    """Every partition of `topics`, from fresh metadata: the consumer's cached copy (what the public
    `partitions_for_topic` reads) only covers topics it was already told about."""
    cluster = await consumer._client.fetch_all_metadata()
    found: list[TopicPartition] = []
    for topic in topics:
        numbers = cluster.partitions_for_topic(topic)
        if not numbers:
            raise TopicsMissing(f"topic {topic} does not exist yet; the service creates it when it starts")
        found.extend(TopicPartition(topic, number) for number in sorted(numbers))
    return found


def _decode(record: ConsumerRecord) -> Envelope | None:
    """Records that are not aidtrail CloudEvents are skipped (the services dead-letter them)."""
    try:
        return from_record(record.headers, record.value)
    except EnvelopeError:
        return None
