"""The consumer runner: applies each event exactly once to a service's read model.

For every polled batch of one partition it opens ONE transaction, moves the partition's stored position past the
batch (when it stood at the batch's first offset, as it does unless another replica got there first), then applies
each record inside a savepoint and records its event id (dedup); all of it commits together or not at all. On
start and on every rebalance it seeks to the positions stored in the database; Kafka's own committed offsets are
only informational (for lag tools).

Replicas of a service form one consumer group on one database. A replica that lost a partition in a rebalance
may still be applying a batch it polled before; inside its transaction it finds the stored position elsewhere,
reads it and skips what another replica already applied, so no record is applied twice and no position moves
backwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.domain.errors import DomainError
from shared.events.batch_events import Payload
from shared.events.envelope import Envelope, EnvelopeError, from_record
from shared.events.registry import InvalidPayload, UnknownEventType, parse_envelope
from shared.messaging.dead_letter import FailedRecord, park, parked_streams
from shared.messaging.kafka_config import connection_options
from shared.messaging.own_events import mark_own_stored, own_event_id, own_source
from shared.messaging.positions import advance_position, load_positions, save_position
from shared.settings import Settings
from shared.store.database import Database
from shared.store.schema import consumer_positions, parked_events, processed_events

log = logging.getLogger(__name__)

Handler = Callable[[AsyncConnection, Envelope, Payload], Awaitable[None]]
_MARK_PROCESSED = processed_events.insert()
RETRY_SECONDS = 1.0
UNREADABLE = (EnvelopeError, UnknownEventType, InvalidPayload)
# PostgreSQL's SQLSTATE classes for a value that does not fit (22) or breaks a constraint (23).
DATA_REFUSAL_CLASSES = ("22", "23")
STREAM_ID_LENGTH = 120  # outbox.key: the dead-letter record is keyed by the stream
EVENT_ID_LENGTH = 64  # parked_events.event_id


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
        self.own_source = own_source(handler)
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
        # Paused while seeking: otherwise the fetcher may hand out records from a default position first.
        self.consumer.pause(*assigned)
        fresh = [tp for tp in assigned if (tp.topic, tp.partition) not in stored]
        for tp in assigned:
            if (tp.topic, tp.partition) in stored:
                self.consumer.seek(tp, stored[(tp.topic, tp.partition)])
        if fresh:
            await self.consumer.seek_to_beginning(*fresh)
        self.consumer.resume(*assigned)

    async def _run(self) -> None:
        assert self.consumer is not None
        while True:
            try:
                batches = await self.consumer.getmany(timeout_ms=500, max_records=self.settings.consumer_batch_size)
            except KafkaError as exc:  # the broker is away: nothing was applied, poll again once it is back
                log.warning("consumer poll failed; retrying", extra={"consumer": self.name, "error": repr(exc)})
                await asyncio.sleep(RETRY_SECONDS)
                continue
            for tp, records in batches.items():
                await self._apply_partition_batch(tp, records)
            await self._update_lag()

    async def _apply_partition_batch(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        while True:
            try:
                async with self.database.transaction() as conn:
                    if self.lock_writes is not None:
                        await self.lock_writes(conn)
                    end = records[-1].offset + 1
                    claimed = await advance_position(conn, self.name, tp.topic, tp.partition, records[0].offset, end)
                    fresh = records if claimed else await self._not_yet_applied(conn, tp, records)
                    for record in await self._skip_own_stored(conn, fresh):
                        await self._apply_record(conn, record)
                    if fresh and not claimed:
                        await save_position(conn, self.name, tp.topic, tp.partition, end)
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

    async def _not_yet_applied(
        self, conn: AsyncConnection, tp: TopicPartition, records: list[ConsumerRecord]
    ) -> list[ConsumerRecord]:
        """Drop records below the stored position: another replica applied them after a rebalance (one primary
        key read per batch). It may have parked streams meanwhile, so the parked set is reloaded then."""
        stored = await _stored_position(conn, self.name, tp)
        if stored is None or stored <= records[0].offset:
            return records
        self._parked = await parked_streams(conn, self.name)
        return [record for record in records if record.offset >= stored]

    async def _skip_own_stored(self, conn: AsyncConnection, records: list[ConsumerRecord]) -> list[ConsumerRecord]:
        """Record this service's own events, already in its store, as processed in one statement (see
        own_events.py); returns the records left for the ordinary path. A parked stream's records stay on it, so
        that they are parked behind the event that blocks the stream, as before."""
        if self.own_source is None:
            return records
        source = self.own_source.encode()
        candidates: dict[str, ConsumerRecord] = {}
        for record in records:
            event_id = own_event_id(record, source)
            if event_id is not None and _stream_id(record) not in self._parked:
                candidates[event_id] = record
        marked = await mark_own_stored(conn, self.name, self.own_source, list(candidates))
        self.stats.applied += len(marked)
        done = {id(candidates[event_id]) for event_id in marked}
        return [record for record in records if id(record) not in done]

    def unpark(self, stream_id: str) -> None:
        """The dead-letter tool replayed or discarded the stream's parked events: let its next events through."""
        self._parked.discard(stream_id)

    async def _still_parked(self, conn: AsyncConnection, stream_id: str) -> bool:
        """The in-memory set is a cache: the dead-letter tool may have replayed the stream on another replica."""
        query = sa.select(parked_events.c.id).where(
            parked_events.c.consumer == self.name, parked_events.c.stream_id == stream_id
        )
        if (await conn.execute(query.limit(1))).first() is not None:
            return True
        self._parked.discard(stream_id)
        return False

    async def _apply_record(self, conn: AsyncConnection, record: ConsumerRecord) -> None:
        failed = _failed_record(self.name, record)
        if failed.stream_id in self._parked and await self._still_parked(conn, failed.stream_id):
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
        except Exception as exc:
            if not is_refusal(exc):
                raise
            await self._park(conn, failed, refusal_reason(exc))
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


def is_refusal(exc: Exception) -> bool:
    """The record's own data broke a rule or does not fit the read model: retrying would fail forever, so the
    record is parked. Anything else (the database away, a lock timeout) fails the batch, which is retried."""
    if isinstance(exc, DomainError | DataError | IntegrityError):
        return True
    sqlstate = str(getattr(getattr(exc, "orig", None), "sqlstate", None) or "")
    return isinstance(exc, DBAPIError) and sqlstate[:2] in DATA_REFUSAL_CLASSES


def refusal_reason(exc: Exception) -> str:
    """What the dead-letter record and the operator see: the rule's own words, or the database's."""
    if isinstance(exc, DomainError):
        return exc.message
    detail = getattr(exc, "orig", None) or exc
    return f"the read model refused the event's data: {str(detail).splitlines()[0][:500]}"


async def _stored_position(conn: AsyncConnection, consumer: str, tp: TopicPartition) -> int | None:
    query = sa.select(consumer_positions.c.next_offset).where(
        consumer_positions.c.consumer == consumer,
        consumer_positions.c.topic == tp.topic,
        consumer_positions.c.partition == tp.partition,
    )
    position = (await conn.execute(query)).scalar()
    return None if position is None else int(position)


def _failed_record(consumer: str, record: ConsumerRecord) -> FailedRecord:
    """Never fails, whatever was produced: parking is the one thing a poison record must not break."""
    headers = [(name, value or b"") for name, value in record.headers or ()]
    event_id = next((v.decode(errors="replace")[:EVENT_ID_LENGTH] for n, v in headers if n == "ce_id"), None)
    return FailedRecord(
        consumer, _stream_id(record), record.topic, record.partition, record.offset, event_id, headers, record.value
    )


def _stream_id(record: ConsumerRecord) -> str:
    key = record.key.decode(errors="replace") if record.key else f"unkeyed:{record.partition}"
    return key[:STREAM_ID_LENGTH]
