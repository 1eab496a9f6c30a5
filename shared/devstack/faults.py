"""Proof that a fault lost nothing and duplicated nothing, from three independent sources, once the system settled.

Why three: a 2xx means a command's events were committed to the service's store and outbox, so each acknowledged
command must appear in the Kafka log exactly once (one ce_id per command identity); the log shows what the relays
published (a copy of the same ce_id is the relay republishing after a crash, which consumers drop by id); each
service's own database shows whether its consumers applied every event of the log exactly once: its copy of every
batch stream equals the log's order for that key with gap-free versions, its batch view is at the stream's length,
its processed ids cover the log, and its positions stand at the end of every partition. The auditor's replay then
checks every conservation rule over the same log.

Read-only throughout: it reads the topics with its own group-less consumer and opens the services' databases only
to query them.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.devstack.log_reader import Expected, FaultCheckError, LogIndex, read_log, topic_partitions
from shared.devstack.processes import Stack
from shared.projections.batch_view import batch_view
from shared.settings import Settings
from shared.store.database import Database
from shared.store.schema import consumer_positions, events, outbox, parked_events, processed_events

SETTLE_DEADLINE_SECONDS = 240.0
POLL_SECONDS = 0.25
SHOWN_PROBLEMS = 20


# --- the services' databases ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsumerInfo:
    name: str
    topics: tuple[str, ...]


def consumers_of(service: str, settings: Settings) -> list[ConsumerInfo]:
    """The consumers a service runs, named as ServiceRuntime names them, from the service's own spec."""
    spec = importlib.import_module(f"services.{service}.bootstrap").SPEC
    return [
        ConsumerInfo(f"{settings.topic_prefix}.{service}.{c.name}", tuple(c.topics(settings))) for c in spec.consumers
    ]


@dataclass
class ServiceCheck:
    """What one service's database says about the log: `lost` and `duplicated` name events, `problems` say why."""

    service: str
    applied: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


async def _scalar(conn: Any, query: Any) -> int:
    return int((await conn.execute(query)).scalar() or 0)


async def unsent_outbox(database: Database) -> int:
    """Committed events the relay has not yet marked published."""
    async with database.read() as conn:
        query = sa.select(sa.func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))
        return await _scalar(conn, query)


async def stored_positions(database: Database, consumer: str) -> dict[tuple[str, int], int]:
    async with database.read() as conn:
        query = sa.select(consumer_positions).where(consumer_positions.c.consumer == consumer)
        return {(row.topic, row.partition): int(row.next_offset) for row in await conn.execute(query)}


def behind(positions: Mapping[tuple[str, int], int], ends: Mapping[tuple[str, int], int], topics: Iterable[str]) -> int:
    """How many records of `topics` a consumer has not applied yet, by its positions stored in its database."""
    wanted = set(topics)
    return sum(max(0, end - positions.get(key, 0)) for key, end in ends.items() if key[0] in wanted)


async def _lag(database: Database, service: str, settings: Settings, ends: Mapping[tuple[str, int], int]) -> int:
    backlog = await unsent_outbox(database)
    for consumer in consumers_of(service, settings):
        backlog += behind(await stored_positions(database, consumer.name), ends, consumer.topics)
    return backlog


async def settle(stack: Stack, settings: Settings, deadline: float = SETTLE_DEADLINE_SECONDS) -> float:
    """Wait until every outbox is drained and every consumer's stored position is at the end of its partitions.

    Twice in a row, so that a relay publishing its last rows between the two reads cannot end the wait early.
    Returns the seconds it took."""
    began = time.monotonic()
    partitions = await topic_partitions(settings)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None, request_timeout_ms=30_000)
    databases = {name: Database.connect(stack.config.database_url(name)) for name in stack.services}
    await consumer.start()
    try:
        quiet_rounds = 0
        while quiet_rounds < 2:
            offsets: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
            ends = {(tp.topic, tp.partition): offset for tp, offset in offsets.items()}
            lags = {name: await _lag(db, name, settings, ends) for name, db in databases.items()}
            quiet_rounds = quiet_rounds + 1 if not any(lags.values()) else 0
            if time.monotonic() - began > deadline:
                raise FaultCheckError(f"not settled after {deadline:.0f}s; unpublished or unapplied: {lags}")
            if quiet_rounds < 2:
                await asyncio.sleep(POLL_SECONDS)
    finally:
        await consumer.stop()
        for database in databases.values():
            await database.dispose()
    return time.monotonic() - began


async def check_service(service: str, url: str, settings: Settings, log: LogIndex) -> ServiceCheck:
    """Everything one service's database says about the log, read while the service may still be running."""
    database = Database.connect(url)
    check = ServiceCheck(service)
    try:
        async with database.read() as conn:
            await _check_outbox_and_parked(conn, check)
            for consumer in consumers_of(service, settings):
                await _check_consumer(conn, consumer, log, check)
            await _check_streams(conn, log, check)
            await _check_views(conn, log, check)
    finally:
        await database.dispose()
    return check


async def _check_outbox_and_parked(conn: Any, check: ServiceCheck) -> None:
    unsent = await _scalar(conn, sa.select(sa.func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None)))
    if unsent:
        check.problems.append(f"{unsent} outbox rows were never published")
    parked = await _scalar(conn, sa.select(sa.func.count()).select_from(parked_events))
    if parked:
        check.problems.append(f"{parked} events were parked instead of applied")


async def _check_consumer(conn: Any, consumer: ConsumerInfo, log: LogIndex, check: ServiceCheck) -> None:
    """Processed ids must equal the log's ids on the consumer's topics; positions must be at the partitions' ends."""
    query = sa.select(processed_events.c.event_id).where(processed_events.c.consumer == consumer.name)
    processed = {row.event_id for row in await conn.execute(query)}
    on_log = set().union(*(log.topic_ids.get(topic, set()) for topic in consumer.topics))
    check.applied += len(processed)
    check.lost += [f"{consumer.name} never applied {event_id}" for event_id in sorted(on_log - processed)]
    invented = processed - on_log
    if invented:
        check.problems.append(f"{consumer.name} processed {len(invented)} ids that are not on the log")
    positions_query = sa.select(consumer_positions).where(consumer_positions.c.consumer == consumer.name)
    positions = {(row.topic, row.partition): int(row.next_offset) for row in await conn.execute(positions_query)}
    if behind(positions, log.end_offsets, consumer.topics):
        check.problems.append(f"{consumer.name} positions {positions} are short of the log's ends")


async def _check_streams(conn: Any, log: LogIndex, check: ServiceCheck) -> None:
    """Every stream gap-free from version 1; every batch stream equal to the log's order for its key; every event
    this service stored, its own included, published."""
    query = sa.select(events.c.stream_id, events.c.version, events.c.event_id).order_by(
        events.c.stream_id, events.c.version
    )
    local: dict[str, list[tuple[int, str]]] = {}
    for row in await conn.execute(query):
        local.setdefault(row.stream_id, []).append((int(row.version), row.event_id))
    for stream_id, rows in local.items():
        if [version for version, _ in rows] != list(range(1, len(rows) + 1)):
            check.problems.append(f"stream {stream_id} versions are not 1..{len(rows)}")
        check.lost += [
            f"{check.service} stored {eid} but it is not on the log" for _, eid in rows if eid not in log.copies
        ]
    for batch_id, ordered in log.streams.items():
        _compare_stream(batch_id, ordered, [eid for _, eid in local.get(batch_id, [])], check)


def _compare_stream(batch_id: str, on_log: Sequence[str], stored: Sequence[str], check: ServiceCheck) -> None:
    if list(stored) == list(on_log):
        return
    stored_ids, logged_ids = set(stored), set(on_log)
    check.lost += [f"{check.service} lacks {eid} of batch {batch_id}" for eid in on_log if eid not in stored_ids]
    extra = len(stored) - len(stored_ids & logged_ids)
    check.duplicated += [f"{check.service} has an extra event in batch {batch_id}"] * extra
    if logged_ids <= stored_ids and not extra:
        check.problems.append(f"{check.service} holds batch {batch_id} in another order than the log")


async def _check_views(conn: Any, log: LogIndex, check: ServiceCheck) -> None:
    """A batch view folded every event of its stream once: its version is the stream's length, no more, no less."""
    versions = {row.batch_id: int(row.version) for row in await conn.execute(sa.select(batch_view))}
    for batch_id, on_log in log.streams.items():
        version = versions.get(batch_id)
        if version is None:
            check.lost.append(f"{check.service} has no view of batch {batch_id}")
        elif version > len(on_log):
            check.duplicated.append(f"{check.service} view of {batch_id} at version {version} > {len(on_log)} events")
        elif version < len(on_log):
            check.lost.append(f"{check.service} view of {batch_id} at version {version} < {len(on_log)} events")


# --- putting it together ----------------------------------------------------------------------------------------


@dataclass
class FaultSummary:
    """The figures the closing note quotes, and the reasons behind any non-zero one."""

    name: str
    acknowledged: int = 0
    events_checked: int = 0
    lost: int = 0
    duplicated: int = 0
    invented: int = 0
    republished: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    applied: dict[str, int] = field(default_factory=dict)
    failed_checks: list[str] = field(default_factory=list)
    audit_records: int = 0
    settle_seconds: float = 0.0
    seconds: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.invented or self.failed_checks or self.problems)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "acknowledged_commands": self.acknowledged,
            "events_checked": self.events_checked,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "invented": self.invented,
            "republished_copies_dropped_by_consumers": self.republished,
            "errors_by_status": self.errors,
            "applied_by_service": self.applied,
            "conservation_failed": self.failed_checks,
            "audit_records": self.audit_records,
            "settle_seconds": round(self.settle_seconds, 1),
            "seconds": round(self.seconds, 1),
            **self.notes,
            "problems": self.problems[:SHOWN_PROBLEMS],
        }


def check_acknowledged(expected: Iterable[Expected], log: LogIndex, summary: FaultSummary) -> None:
    """Each acknowledged command's events are on the log under exactly one id each."""
    for identity in expected:
        ids = log.identities.get(identity, set())
        if not ids:
            summary.lost += 1
            summary.problems.append(f"acknowledged but not on the log: {identity.event_type} {identity.subject}")
        elif len(ids) > 1:
            summary.duplicated += 1
            summary.problems.append(f"{identity.event_type} {identity.subject} is on the log {len(ids)} times")


async def audit_conservation(settings: Settings, summary: FaultSummary) -> None:
    """The auditor's replay: every conservation rule, lineage, designation and hash chain over the same log."""
    from services.audit.replay import replay  # the auditor is a service of its own; only this check needs it

    result = await replay(settings)
    summary.audit_records = result.stats.records
    for check in result.checks:
        if not check.passed:
            summary.failed_checks.append(check.name)
            summary.problems += [f"{check.name}: {finding.message}" for finding in check.findings[:5]]


def check_nothing_invented(log: LogIndex, sent: Callable[[Expected], bool], summary: FaultSummary) -> None:
    """Every event on the log comes from a command somebody sent (acknowledged or not: a command whose connection
    broke may still have committed)."""
    invented = [identity for identity in log.identities if not sent(identity)]
    summary.invented += len(invented)
    summary.problems += [f"on the log but never sent: {i.event_type} {i.subject}" for i in invented[:5]]


async def verify_no_loss(
    stack: Stack,
    settings: Settings,
    expected: Iterable[Expected],
    summary: FaultSummary,
    sent: Callable[[Expected], bool] | None = None,
) -> FaultSummary:
    """Settle, then compare the acknowledged commands with the log and the log with every service's database."""
    summary.settle_seconds = await settle(stack, settings)
    log = await read_log(settings)
    summary.events_checked = log.events
    summary.republished = log.republished
    check_acknowledged(expected, log, summary)
    if sent is not None:
        check_nothing_invented(log, sent, summary)
    for name in stack.services:
        service = await check_service(name, stack.config.database_url(name), settings, log)
        summary.applied[name] = service.applied
        summary.lost += len(service.lost)
        summary.duplicated += len(service.duplicated)
        summary.problems += service.lost[:5] + service.duplicated[:5] + service.problems
    await audit_conservation(settings, summary)
    return summary
