"""Row: propagation latency, commit in pledge -> applied in the warehouse's projection, under a steady load.

Ours: pledge and warehouse as uvicorn subprocesses with the bench probes (bench.probes): the wall-clock time of
each command's commit in pledge and of the commit of the warehouse's projection transaction that applied its
batch.pledged event, joined by correlation id. The path is the whole pipeline: outbox row -> relay wakes ->
idempotent produce (acks=all) -> broker -> consumer fetch -> transaction with dedup and position -> commit.
Baseline: the broker alone, in the same run: an aiokafka producer configured like the relay's (make_producer) and
a read_committed consumer like the projection's, at the same rate, produce call -> record received.

The target is absolute (p99 <= 100 ms); the ratio to the broker's p99 says how much of it is ours.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
from aiokafka import AIOKafkaConsumer

from bench.commands_bench import DONOR, auth_headers, pledge_body
from bench.environment import run_topics
from bench.eventlog import topic_partitions
from bench.load import LoadResult, new_client, percentile, steady_rate
from bench.results import Direction, Row, Target, fmt_ms, ratio
from bench.servers import REPO_ROOT, Server, served
from shared.messaging.kafka_config import connection_options
from shared.messaging.relay import make_producer
from shared.messaging.topics import ensure_topics
from shared.settings import Settings

TARGET = Target(Direction.AT_MOST, 0.100, on="p99 (s)")
DRAIN_DEADLINE_S = 60.0


@dataclass(frozen=True)
class LatencyPlan:
    rate: float
    seconds: float
    consumer: str = "warehouse"
    code_root: Path = REPO_ROOT


@dataclass
class Propagation:
    latencies: list[float]
    sent: LoadResult
    missing: int
    relay: list[float]


def _settings(url: str, kafka: str, prefix: str) -> dict[str, str]:
    return {"database_url": url, "kafka_bootstrap": kafka, "topic_prefix": prefix, "log_level": "WARNING"}


async def _wait_applied(client: httpx.AsyncClient, consumer: Server, wanted: set[str]) -> dict[str, float]:
    deadline = time.monotonic() + DRAIN_DEADLINE_S
    while True:
        applied: dict[str, float] = (await consumer.probe(client))["applied"]
        if wanted <= applied.keys() or time.monotonic() > deadline:
            return applied
        await asyncio.sleep(0.2)


async def propagation(kafka: str, workdir: Path, plan: LatencyPlan) -> Propagation:
    async with run_topics(kafka, f"bench-lat-{uuid.uuid4().hex[:8]}") as prefix:
        return await _propagation(kafka, workdir, plan, prefix)


async def _propagation(kafka: str, workdir: Path, plan: LatencyPlan, prefix: str) -> Propagation:
    run, root = uuid.uuid4().hex[:6], plan.code_root
    headers = auth_headers()
    urls = [f"sqlite+aiosqlite:///{workdir / f'{prefix}-{name}.db'}" for name in ("pledge", plan.consumer)]
    async with (
        served(plan.consumer, _settings(urls[1], kafka, prefix), workdir, probe=True, code_root=root) as consumer,
        served("pledge", _settings(urls[0], kafka, prefix), workdir, probe=True, code_root=root) as pledge,
        new_client(64) as client,
    ):
        (
            await client.post(f"{pledge.url}/donors", json={"donor_id": DONOR, "name": "d"}, headers=headers)
        ).raise_for_status()

        async def send(http: httpx.AsyncClient, n: int) -> httpx.Response:
            traced = headers | {"X-Correlation-ID": f"lat-{run}-{n}"}
            return await http.post(f"{pledge.url}/pledges", json=pledge_body(n), headers=traced)

        sent = await steady_rate(client, send, plan.rate, plan.seconds)
        committed = {c: t for c, t in (await pledge.probe(client))["committed"].items() if c.startswith(f"lat-{run}")}
        applied = await _wait_applied(client, consumer, set(committed))
        produced: dict[str, float] = (await consumer.probe(client))["produced"]
    latencies = [applied[c] - t for c, t in committed.items() if c in applied]
    relay = [produced[c] - t for c, t in committed.items() if c in produced]
    return Propagation(latencies, sent, len(committed) - len(latencies), relay)


async def broker_latency(kafka: str, rate: float, seconds: float) -> list[float]:
    """Produce -> consume through the broker alone, same client settings as the relay and the projection."""
    async with run_topics(kafka, f"bench-brk-{uuid.uuid4().hex[:8]}") as prefix:
        return await _broker_latency(Settings(kafka_bootstrap=kafka, topic_prefix=prefix), rate, seconds)


async def _broker_latency(settings: Settings, rate: float, seconds: float) -> list[float]:
    await ensure_topics(settings)
    consumer = AIOKafkaConsumer(**connection_options(settings), group_id=None, isolation_level="read_committed")
    producer = make_producer(settings)
    await asyncio.gather(consumer.start(), producer.start())
    try:
        partitions = await topic_partitions(consumer, settings.batch_topic)
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        expected = int(rate * seconds)
        received = asyncio.create_task(_receive(consumer, expected, seconds + DRAIN_DEADLINE_S))
        await _produce(producer, settings.batch_topic, rate, expected)
        return await received
    finally:
        await asyncio.gather(consumer.stop(), producer.stop())


async def _produce(producer: object, topic: str, rate: float, count: int) -> None:
    began, futures = time.perf_counter(), []
    for n in range(count):
        delay = began + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        value = orjson.dumps({"sent": time.time()})
        futures.append(await producer.send(topic, value=value, key=f"b{n}".encode()))  # type: ignore[attr-defined]
    await asyncio.gather(*futures)


async def _receive(consumer: AIOKafkaConsumer, expected: int, limit_s: float) -> list[float]:
    latencies: list[float] = []
    deadline = time.monotonic() + limit_s
    while len(latencies) < expected and time.monotonic() < deadline:
        for records in (await consumer.getmany(timeout_ms=500)).values():
            now = time.time()
            latencies.extend(now - orjson.loads(record.value)["sent"] for record in records)
    return latencies


async def measure(kafka: str, workdir: Path, plan: LatencyPlan) -> list[Row]:
    ours = await propagation(kafka, workdir, plan)
    base = await broker_latency(kafka, plan.rate, plan.seconds)
    rows = []
    for name, fraction in (("p50", 0.50), ("p99", 0.99)):
        mine, theirs = percentile(ours.latencies, fraction), percentile(base, fraction)
        rows.append(
            Row(
                what=f"propagation pledge -> {plan.consumer}, {name}, {plan.rate:g} commands/s",
                ours=fmt_ms(mine),
                baseline=fmt_ms(theirs),
                ratio=ratio(mine, theirs),
                target=TARGET if name == "p99" else None,
                checked=mine,
                notes=_notes(ours, base, plan),
                extra={"ours_s": mine, "baseline_s": theirs},
            )
        )
    return rows


def _notes(ours: Propagation, base: list[float], plan: LatencyPlan) -> str:
    achieved = ours.sent.completed / ours.sent.seconds if ours.sent.seconds else 0.0
    note = (
        f"{len(ours.latencies)} events over {plan.seconds:g} s (achieved {achieved:.0f}/s); max "
        f"{fmt_ms(max(ours.latencies, default=0))} vs broker max {fmt_ms(max(base, default=0))}; "
        f"commit -> produced by the relay p50 {fmt_ms(percentile(ours.relay, 0.5))}, "
        f"p99 {fmt_ms(percentile(ours.relay, 0.99))}"
    )
    if ours.missing or ours.sent.errors:
        note += f"; {ours.missing} not applied within {DRAIN_DEADLINE_S:.0f} s, {ours.sent.errors} command errors"
    return note
