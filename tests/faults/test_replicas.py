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
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.devstack.faults import LogIndex, read_log
from shared.devstack.processes import ServiceProcess, Stack, StackConfig
from shared.events import batch_events as ev
from shared.events.envelope import Envelope, encode_data, to_headers
from shared.events.registry import BATCH_EVENT_TYPES, payload_data
from shared.messaging.consumer import Handler, ProjectionConsumer
from shared.messaging.relay import OutboxRelay, make_producer
from shared.messaging.relay_lease import RelayLease
from shared.messaging.topics import ensure_topics
from shared.projections.batch_view import batch_view, replicate_batches
from shared.settings import Settings
from shared.store.database import Database
from shared.store.event_store import EventStore, StreamAppend, TopicNames
from shared.store.migrations import upgrade
from shared.store.schema import consumer_positions, events, outbox, parked_events
from shared.web.auth import Role, mint_token
from tests.fixtures.databases import fresh_postgres_url
from tests.harness import wait_until
from tests.unit import lifecycle_builders as b

REPLICAS = {"pledge": ("pledge", "pledge-2"), "warehouse": ("warehouse", "warehouse-2")}
CONSUMERS = {"pledge": (("batches", "batch"),), "warehouse": (("batches", "batch"), ("reference", "reference"))}
WORKERS = 4
PLEDGES_PER_WORKER = 15
TOTAL_PLEDGES = WORKERS * PLEDGES_PER_WORKER
LEASE_SECONDS = "3"
CALL_DEADLINE_SECONDS = 180.0
RETRY_SECONDS = 0.3
DEADLINE_SECONDS = 240.0
SITE = "wh-replicas"


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


# --- the load: pledges, amendments and receipts on alternating replicas ----------------------------------------


@dataclass
class Ledger:
    """What the services acknowledged (2xx), and what it took to get there."""

    pledges: dict[str, list[str]] = field(default_factory=dict)
    event_ids: dict[str, list[str]] = field(default_factory=dict)
    failovers: Counter[str] = field(default_factory=Counter)
    refused: list[str] = field(default_factory=list)
    done: int = 0

    async def reached(self, count: int) -> None:
        await wait_until(lambda: asyncio.sleep(0, self.done >= count), what=f"{count} pledges", deadline=300)


class Driver:
    def __init__(self, stack: Stack, settings: Settings, ledger: Ledger):
        self.stack = stack
        self.ledger = ledger
        token = mint_token("load", Role.admin, settings=settings)
        self.http = httpx.AsyncClient(timeout=30.0, headers={"Authorization": f"Bearer {token}"})

    async def call(self, service: str, turn: int, method: str, path: str, body: Any, key: str) -> Any | None:
        """Try the replicas in turn, with the same Idempotency-Key: a refused connection or a 5xx fails over, and
        a 404 waits for the batch to reach this service (through Kafka, so possibly through a rebalance)."""
        replicas = REPLICAS[service]
        until = time.monotonic() + CALL_DEADLINE_SECONDS
        attempt = 0
        while time.monotonic() < until:
            name = replicas[(turn + attempt) % 2]
            attempt += 1
            try:
                response = await self.http.request(
                    method, self.stack.url(name) + path, json=body, headers={"Idempotency-Key": key}
                )
            except httpx.TransportError:
                self.ledger.failovers[name] += 1
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if response.status_code < 300:
                return response.json()
            if response.status_code < 500 and response.status_code != 404:
                self.ledger.refused.append(f"{method} {path} -> {response.status_code}: {response.text[:300]}")
                return None
            await asyncio.sleep(RETRY_SECONDS)
        self.ledger.refused.append(f"{method} {path}: no replica answered in {CALL_DEADLINE_SECONDS:.0f}s")
        return None

    async def worker(self, worker: int) -> None:
        for number in range(PLEDGES_PER_WORKER):
            await self.journey(f"r{worker}-{number}", worker + number)
            self.ledger.done += 1

    async def journey(self, pledge_id: str, turn: int) -> None:
        """A pledge of two lines; line 1 amended twice (three pledge events), line 2 received at the warehouse."""
        lines = [{"item": "n95-mask", "quantity": q, "unit": "piece", "warehouse_id": SITE} for q in (100, 200)]
        body = {"pledge_id": pledge_id, "donor_id": "replica-donor", "lines": lines}
        created = await self.call("pledge", turn, "POST", "/pledges", body, f"create-{pledge_id}")
        if created is None:
            return
        self.ledger.pledges[pledge_id] = created["batch_ids"]
        first, second = created["batch_ids"]
        for amendment, quantity in enumerate((101, 102)):
            path, change = f"/pledges/{pledge_id}/lines/1", {"quantity": quantity, "reason": "recounted"}
            amended = await self.call(
                "pledge", turn + amendment + 1, "PATCH", path, change, f"amend-{pledge_id}-{quantity}"
            )
            if amended is not None:
                self.ledger.event_ids.setdefault(first, []).append(amended["event_id"])
        receipt = {"site_id": SITE, "quantity_received": 200, "lot": "L1", "expiry": "2030-01-01", "condition": "good"}
        received = await self.call(
            "warehouse", turn, "POST", f"/batches/{second}/receive", receipt, f"receive-{second}"
        )
        if received is not None:
            self.ledger.event_ids.setdefault(second, []).extend(received["event_ids"])

    async def register_donor(self) -> None:
        body = {"donor_id": "replica-donor", "name": "Replica Donor"}
        assert await self.call("pledge", 0, "POST", "/donors", body, "donor") is not None, self.ledger.refused


# --- faults, and a watch on the relay leases -------------------------------------------------------------------


async def metric(http: httpx.AsyncClient, url: str, name: str) -> float | None:
    try:
        text = (await http.get(f"{url}/metrics", timeout=5.0)).text
    except httpx.HTTPError:
        return None
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    return values[0] if values else None


@dataclass
class LeaseWatch:
    """Samples every replica's `aidtrail_relay_lease_held`: never two holders of one service's lease at once."""

    stack: Stack
    samples: int = 0
    most_holders: dict[str, int] = field(default_factory=Counter)
    holders_seen: dict[str, set[str]] = field(default_factory=dict)

    async def holder(self, http: httpx.AsyncClient, service: str) -> str | None:
        held = []
        for name in REPLICAS[service]:
            if await metric(http, self.stack.url(name), "aidtrail_relay_lease_held") == 1.0:
                held.append(name)
        self.most_holders[service] = max(self.most_holders[service], len(held))
        self.holders_seen.setdefault(service, set()).update(held)
        return held[0] if held else None

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient() as http:
            while not stop.is_set():
                for service in REPLICAS:
                    await self.holder(http, service)
                self.samples += 1
                await asyncio.sleep(0.3)

    async def current(self, service: str) -> str:
        async with httpx.AsyncClient() as http:

            async def probe() -> str | None:
                return await self.holder(http, service)

            return await wait_until(probe, what=f"a {service} replica holding the relay lease", deadline=60)


async def group_members(settings: Settings, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    return len(response.groups[0][5])


async def stop_gracefully(stack: Stack, name: str) -> None:
    process = stack.services[name]
    process.signal(signal.SIGTERM)
    await asyncio.to_thread(process.wait_exit)


async def inject_faults(stack: Stack, settings: Settings, ledger: Ledger, watch: LeaseWatch) -> list[str]:
    """Join, crash, restart and leave replicas at points of the load, so every change happens under traffic."""
    done: list[str] = []
    group = f"{settings.topic_prefix}.warehouse.batches"
    await ledger.reached(TOTAL_PLEDGES // 6)
    await stack.start("warehouse-2")
    await wait_until(lambda: _members_are(settings, group, 2), what="two warehouse replicas in one group", deadline=90)
    done.append("warehouse-2 joined the group")
    await crash_and_restart(stack, ledger, await watch.current("pledge"), 2 * TOTAL_PLEDGES // 6, done)
    await crash_and_restart(stack, ledger, await watch.current("warehouse"), 3 * TOTAL_PLEDGES // 6, done)
    await ledger.reached(5 * TOTAL_PLEDGES // 6)
    await stop_gracefully(stack, "warehouse-2")
    await stack.restart("warehouse-2")
    done.append("warehouse-2 stopped (SIGTERM) and restarted")
    return done


async def crash_and_restart(stack: Stack, ledger: Ledger, name: str, at: int, done: list[str]) -> None:
    """SIGKILL the replica holding the lease, let the load fail over for a while, then bring it back."""
    await ledger.reached(at)
    stack.kill(name)
    await ledger.reached(at + TOTAL_PLEDGES // 12)
    await stack.restart(name)
    done.append(f"{name} (lease holder) killed at {at} pledges and restarted")


async def _members_are(settings: Settings, group: str, count: int) -> bool:
    try:
        return await group_members(settings, group) == count
    except Exception:
        return False


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


async def batch_streams(database: Database) -> dict[str, list[tuple[int, str]]]:
    query = (
        sa.select(events.c.stream_id, events.c.version, events.c.event_id)
        .where(events.c.event_type.in_(sorted(BATCH_EVENT_TYPES)))
        .order_by(events.c.stream_id, events.c.version)
    )
    streams: dict[str, list[tuple[int, str]]] = {}
    async with database.read() as conn:
        for row in await conn.execute(query):
            streams.setdefault(row.stream_id, []).append((int(row.version), row.event_id))
    return streams


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


# --- the two mechanisms on their own, in process, on both backends ---------------------------------------------

PLEDGE_MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "pledge" / "migrations"


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database.connect(database_url)
    await upgrade(db, PLEDGE_MIGRATIONS)
    yield db
    await db.dispose()


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
