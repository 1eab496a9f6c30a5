"""The consumer runner: applies each event exactly once to a service's read model.

For every polled batch of one partition it opens ONE transaction, applies each record inside a savepoint,
records the event id (dedup) and finally the partition's next offset. On start and on every rebalance it seeks to
the positions stored in the database; Kafka's own committed offsets are only informational (for lag tools).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.domain.errors import DomainError
from shared.events.batch_events import Payload
from shared.events.envelope import Envelope, EnvelopeError, from_record
from shared.events.registry import InvalidPayload, UnknownEventType, parse_envelope
from shared.messaging.dead_letter import FailedRecord, park, parked_streams
from shared.messaging.kafka_config import connection_options
from shared.messaging.positions import load_positions, save_position
from shared.settings import Settings
from shared.store.database import Database
from shared.store.schema import processed_events

log = logging.getLogger(__name__)

Handler = Callable[[AsyncConnection, Envelope, Payload], Awaitable[None]]
_MARK_PROCESSED = processed_events.insert()
RETRY_SECONDS = 1.0
UNREADABLE = (EnvelopeError, UnknownEventType, InvalidPayload)


class _Duplicate(Exception):
    """This consumer applied the event before (the relay may publish twice after a crash); it is dropped."""


@dataclass
class ConsumerStats:
    applied: int = 0
    duplicates: int = 0
    parked: int = 0
    lag: dict[tuple[str, int], int] = field(default_factory=dict)


class _SeekToStoredPositions(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: ProjectionConsumer):
        self.runner = runner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Nothing to flush: every applied batch already committed its position with its effects."""

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.runner.seek_to_stored(assigned)


class ProjectionConsumer:
    def __init__(
        self,
        name: str,
        topics: list[str],
        handler: Handler,
        database: Database,
        settings: Settings,
        lock_writes: Callable[[AsyncConnection], Awaitable[None]] | None = None,
    ):
        self.lock_writes = lock_writes
        self.name = name
        self.topics = topics
        self.handler = handler
        self.database = database
        self.settings = settings
        self.stats = ConsumerStats()
        self.consumer: AIOKafkaConsumer | None = None
        self._parked: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def _make_consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            **connection_options(self.settings),
            group_id=self.name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=self.settings.consumer_batch_size,
        )

    async def start(self) -> None:
        self.consumer = self._make_consumer()
        await self.consumer.start()
        self.consumer.subscribe(self.topics, listener=_SeekToStoredPositions(self))
        self._task = asyncio.create_task(self._run(), name=f"consumer-{self.name}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.consumer:
            await self.consumer.stop()

    async def seek_to_stored(self, assigned: set[TopicPartition]) -> None:
        assert self.consumer is not None
        async with self.database.read() as conn:
            stored = await load_positions(conn, self.name)
            self._parked = await parked_streams(conn, self.name)
        for tp in assigned:
            position = stored.get((tp.topic, tp.partition))
            if position is None:
                await self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, position)

    async def _run(self) -> None:
        assert self.consumer is not None
        while True:
            batches = await self.consumer.getmany(timeout_ms=500, max_records=self.settings.consumer_batch_size)
            for tp, records in batches.items():
                await self._apply_partition_batch(tp, records)
            await self._update_lag()

    async def _apply_partition_batch(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        while True:
            try:
                async with self.database.transaction() as conn:
                    if self.lock_writes is not None:
                        await self.lock_writes(conn)
                    for record in records:
                        await self._apply_record(conn, record)
                    await save_position(conn, self.name, tp.topic, tp.partition, records[-1].offset + 1)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database away: retry the same records; nothing was committed
                log.warning(
                    "consumer batch failed; retrying",
                    extra={"consumer": self.name, "error": repr(exc)[:500]},
                    exc_info=True,
                )
                await asyncio.sleep(RETRY_SECONDS)

    async def _apply_record(self, conn: AsyncConnection, record: ConsumerRecord) -> None:
        failed = _failed_record(self.name, record)
        if failed.stream_id in self._parked:
            await self._park(conn, failed, "parked behind an earlier event of this stream that could not be applied")
            return
        try:
            envelope = from_record(record.headers, record.value)
            payload = parse_envelope(envelope)
        except UNREADABLE as exc:
            await self._park(conn, failed, str(exc))
            return
        try:
            async with conn.begin_nested():
                await self._mark_processed(conn, envelope.id)
                await self.handler(conn, envelope, payload)
        except _Duplicate:
            self.stats.duplicates += 1
            return
        except DomainError as exc:
            await self._park(conn, failed, exc.message)
            return
        self.stats.applied += 1

    async def _mark_processed(self, conn: AsyncConnection, event_id: str) -> None:
        """The dedup row, in the record's own savepoint: a duplicate rolls the savepoint back (PostgreSQL needs
        that after a failed statement) and skips the handler. One savepoint per record, not two, since every
        savepoint is two more round trips inside the batch's transaction."""
        try:
            await conn.execute(_MARK_PROCESSED, {"consumer": self.name, "event_id": event_id})
        except IntegrityError as exc:
            raise _Duplicate(event_id) from exc

    async def _park(self, conn: AsyncConnection, failed: FailedRecord, reason: str) -> None:
        await park(conn, failed, reason, dead_letter_topic=self.settings.dead_letter_topic, blocking=True)
        self._parked.add(failed.stream_id)
        self.stats.parked += 1
        log.error("event parked", extra={"consumer": self.name, "stream": failed.stream_id, "reason": reason})

    async def _update_lag(self) -> None:
        assert self.consumer is not None
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            if highwater is not None:
                position = await self.consumer.position(tp)
                self.stats.lag[(tp.topic, tp.partition)] = max(0, highwater - position)


def _failed_record(consumer: str, record: ConsumerRecord) -> FailedRecord:
    headers = list(record.headers or ())
    event_id = next((v.decode(errors="replace") for n, v in headers if n == "ce_id"), None)
    stream_id = record.key.decode(errors="replace") if record.key else f"unkeyed:{record.partition}"
    return FailedRecord(
        consumer, stream_id, record.topic, record.partition, record.offset, event_id, headers, record.value
    )
