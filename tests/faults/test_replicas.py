"""Fault 5: two replicas of the pledge service on one database and two of the warehouse on another, as real
processes, started, killed, stopped and restarted while pledges are posted continuously to alternating replicas.

What must hold afterwards, from the services' databases and from the Kafka log itself:
* one relay per database publishes at a time (sampled from every replica's lease gauge during the run);
* the log holds each batch's events in version order (first copies; a copy re-sent after a crash may follow);
* every event is applied exactly once by every consumer: each id once, versions gap-free, the batch view at the
  stream's length, both services' copies of every stream identical, nothing parked;
* nothing is lost: every acknowledged command's event is in both services.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shared.devstack.log_reader import LogIndex, read_log
from shared.devstack.processes import ServiceProcess, Stack, StackConfig
from shared.projections.batch_view import batch_view
from shared.settings import Settings
from shared.store.database import Database
from shared.store.schema import consumer_positions, outbox, parked_events
from tests.faults.replica_support import (
    CONSUMERS,
    DEADLINE_SECONDS,
    LEASE_SECONDS,
    REPLICAS,
    TOTAL_PLEDGES,
    WORKERS,
    Driver,
    LeaseWatch,
    Ledger,
    batch_streams,
    inject_faults,
)
from tests.fixtures.databases import fresh_postgres_url

# --- the stack: two replicas per service, each pair on one database ---------------------------------------------


def add_replica(stack: Stack, service: str, name: str) -> None:
    """A second process of `service` under its own name and port, on the first replica's database."""
    stack.config.database_urls[name] = stack.config.database_url(service)
    stack.services[name] = ServiceProcess(service, stack.config.port(name), stack.config.run_dir / f"{name}.log")


@pytest.fixture(params=["postgres", "sqlite"])
async def database_urls(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {}
        return
    async with AsyncExitStack() as stack:
        yield {name: await stack.enter_async_context(fresh_postgres_url()) for name in REPLICAS}


@pytest.fixture
async def stack(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, database_urls: dict[str, str]
) -> AsyncIterator[Stack]:
    config = StackConfig(
        run_dir=tmp_path,
        topic_prefix=topic_prefix,
        kafka_bootstrap=kafka_bootstrap,
        database_urls=dict(database_urls),
        extra_env={"AIDTRAIL_RELAY_LEASE_SECONDS": LEASE_SECONDS},
    )
    stack = Stack(config, services=tuple(REPLICAS))
    for service, (_, second) in REPLICAS.items():
        add_replica(stack, service, second)
    try:
        await stack.start("pledge", "pledge-2", "warehouse")
        yield stack
    finally:
        stack.stop()


def settings_of(stack: Stack) -> Settings:
    config = stack.config
    return Settings(
        topic_prefix=config.topic_prefix, kafka_bootstrap=config.kafka_bootstrap, jwt_secret=config.jwt_secret
    )


# --- settling and checking -------------------------------------------------------------------------------------


def consumer_names(service: str, settings: Settings) -> dict[str, str]:
    """Consumer name -> the topic it reads, as ServiceRuntime names them."""
    topics = {"batch": settings.batch_topic, "reference": settings.reference_topic}
    return {f"{settings.topic_prefix}.{service}.{name}": topics[kind] for name, kind in CONSUMERS[service]}


async def scalar(database: Database, query: Any) -> int:
    async with database.read() as conn:
        return int((await conn.execute(query)).scalar() or 0)


async def settled(databases: dict[str, Database], settings: Settings, ends: dict[tuple[str, int], int]) -> bool:
    """Outboxes drained and every consumer's stored position at the end of its topic's partitions."""
    for service, database in databases.items():
        unsent = sa.select(sa.func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))
        if await scalar(database, unsent):
            return False
        for consumer, topic in consumer_names(service, settings).items():
            query = sa.select(consumer_positions).where(consumer_positions.c.consumer == consumer)
            async with database.read() as conn:
                stored = {(row.topic, row.partition): row.next_offset for row in await conn.execute(query)}
            if any(stored.get(key, 0) < end for key, end in ends.items() if key[0] == topic and end > 0):
                return False
    return True


async def settle(databases: dict[str, Database], settings: Settings) -> LogIndex:
    """Wait until nothing is in flight, then read the whole log (its end taken after the outboxes drained)."""
    until = time.monotonic() + DEADLINE_SECONDS
    while True:
        log = await read_log(settings)
        if await settled(databases, settings, log.end_offsets):
            again = await read_log(settings)
            if again.end_offsets == log.end_offsets:
                return again
        assert time.monotonic() < until, "the replicas did not settle in time"
        await asyncio.sleep(1.0)


async def check_applied_once(service: str, database: Database) -> dict[str, list[str]]:
    """Each event id once, versions 1..n per stream, the batch view at version n, nothing parked."""
    streams = await batch_streams(database)
    ids = [event_id for stream in streams.values() for _, event_id in stream]
    assert len(ids) == len(set(ids)), f"{service}: an event was applied twice"
    for stream_id, stream in streams.items():
        assert [version for version, _ in stream] == list(range(1, len(stream) + 1)), f"{service}: gap in {stream_id}"
    async with database.read() as conn:
        views = {row.batch_id: int(row.version) for row in await conn.execute(sa.select(batch_view))}
    wrong = {s: (views.get(s), len(stream)) for s, stream in streams.items() if views.get(s) != len(stream)}
    assert not wrong, f"{service}: batch view not at the stream's length: {wrong}"
    assert await scalar(database, sa.select(sa.func.count()).select_from(parked_events)) == 0, f"{service}: parked"
    return {stream_id: [event_id for _, event_id in stream] for stream_id, stream in streams.items()}


def check_log_order(log: LogIndex, streams: dict[str, list[str]]) -> None:
    """First copies on the log in version order; every event on the log, none on the log that is not stored."""
    for stream_id, ids in streams.items():
        assert log.streams.get(stream_id) == ids, f"{stream_id}: log order {log.streams.get(stream_id)} != {ids}"
    assert set(log.streams) == set(streams), "a batch on the log that the services do not have, or the reverse"


def check_nothing_lost(ledger: Ledger, streams: dict[str, list[str]]) -> int:
    """Every acknowledged pledge's batches exist and every acknowledged event id is in its stream."""
    lost = [batch for batches in ledger.pledges.values() for batch in batches if not streams.get(batch)]
    lost += [event_id for batch, ids in ledger.event_ids.items() for event_id in ids if event_id not in streams[batch]]
    assert not lost, f"acknowledged but missing: {lost[:20]}"
    return sum(1 + len(ledger.event_ids.get(batch, [])) for batches in ledger.pledges.values() for batch in batches)


async def open_databases(stack: Stack) -> dict[str, Database]:
    return {service: Database.connect(stack.config.database_url(service)) for service in REPLICAS}


async def run_load(stack: Stack, settings: Settings, ledger: Ledger, watch: LeaseWatch) -> list[str]:
    driver = Driver(stack, settings, ledger)
    stop = asyncio.Event()
    watching = asyncio.create_task(watch.run(stop))
    try:
        await driver.register_donor()
        workers = [asyncio.create_task(driver.worker(worker)) for worker in range(WORKERS)]
        faults = await inject_faults(stack, settings, ledger, watch)
        await asyncio.gather(*workers)
        return faults
    finally:
        stop.set()
        await watching
        await driver.http.aclose()


async def test_replicas_share_one_database_and_one_group_without_loss_reordering_or_double_application(
    stack: Stack,
) -> None:
    started = time.monotonic()
    settings = settings_of(stack)
    ledger, watch = Ledger(), LeaseWatch(stack)
    faults = await run_load(stack, settings, ledger, watch)
    assert not ledger.refused, ledger.refused[:10]
    assert len(ledger.pledges) == TOTAL_PLEDGES
    databases = await open_databases(stack)
    try:
        log = await settle(databases, settings)
        pledge_streams = await check_applied_once("pledge", databases["pledge"])
        warehouse_streams = await check_applied_once("warehouse", databases["warehouse"])
    finally:
        for database in databases.values():
            await database.dispose()
    assert pledge_streams == warehouse_streams, "both services hold the same streams in the same order"
    check_log_order(log, warehouse_streams)
    acknowledged = check_nothing_lost(ledger, warehouse_streams)
    assert all(count <= 1 for count in watch.most_holders.values()), f"two relays published: {watch.most_holders}"
    figures(stack, started, faults, ledger, watch, log, warehouse_streams, acknowledged)


def figures(
    stack: Stack,
    started: float,
    faults: list[str],
    ledger: Ledger,
    watch: LeaseWatch,
    log: LogIndex,
    streams: dict[str, list[str]],
    acknowledged: int,
) -> None:
    backend = stack.config.database_url("pledge").split(":")[0]
    checked = sum(len(ids) for ids in streams.values())
    batch_ids = {event_id for ids in streams.values() for event_id in ids}
    duplicated = sum(count - 1 for event_id, count in log.copies.items() if event_id in batch_ids)
    print(
        f"\nFAULT5 figures ({backend}): {len(ledger.pledges)} pledges, {acknowledged} acknowledged batch events, "
        f"{checked} batch events checked in each service and on the log, 0 lost, 0 applied twice, "
        f"{duplicated} duplicate copies on the log (all dropped by the consumers), "
        f"{sum(ledger.failovers.values())} failed-over requests, lease holders seen {watch.holders_seen} "
        f"(at most {max(watch.most_holders.values())} at once in {watch.samples} samples), "
        f"faults: {'; '.join(faults)}; run time {time.monotonic() - started:.1f}s"
    )
