"""Fault 6: poison events produced straight onto the batch topic of a running warehouse (a real process, the real
broker). Each goes to the dead-letter topic with its reason, the events behind it in the same batch are parked,
other batches flow on, and the service never crash-loops: it stays live, keeps consuming, and survives a SIGKILL
with its parked state intact."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from shared.devstack.processes import Stack
from shared.events import batch_events as ev
from shared.events.envelope import Envelope, encode_data, to_headers
from shared.events.registry import payload_data
from shared.settings import Settings
from shared.web.auth import Role, mint_token
from tests.harness import wait_until, warehouse_process
from tests.unit import lifecycle_builders as b

DEADLINE_SECONDS = 120.0
BEHIND = "parked behind an earlier event"
Headers = list[tuple[str, bytes | None]]

END_OFFSETS_DEADLINE_SECONDS = 60.0
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Poison:
    """One way a record can be broken, and the words the dead-letter reason must contain."""

    name: str
    reason: str
    headers: Callable[[Headers], Headers] = lambda headers: headers
    value: Callable[[bytes], bytes | None] = lambda value: value
    data: dict[str, Any] = field(default_factory=dict)
    postgres_only: bool = False


def _replace(name: str, new: bytes | None) -> Callable[[Headers], Headers]:
    return lambda headers: [(n, new if n == name else v) for n, v in headers]


POISONS = (
    Poison("malformed-json", "payload is not valid JSON", value=lambda value: value[:-7]),
    Poison("not-an-object", "payload is a JSON list", value=lambda _: b"[1, 2, 3]"),
    Poison("tombstone", "record has no value", value=lambda _: None),
    Poison("unknown-type", "unknown event type", headers=_replace("ce_type", b"org.aidtrail.batch.teleported.v1")),
    Poison(
        "missing-header",
        "missing CloudEvents header(s): ce_actor",
        headers=lambda h: [p for p in h if p[0] != "ce_actor"],
    ),
    Poison("null-header", "missing CloudEvents header(s): ce_subject", headers=_replace("ce_subject", None)),
    Poison("not-utf8-header", "header ce_source is not UTF-8", headers=_replace("ce_source", b"\xff\xfe")),
    Poison("bad-time", "is not an RFC 3339 timestamp", headers=_replace("ce_time", b"yesterday")),
    Poison("invalid-payload", "payload is invalid", data={"quantity": -5}),
    Poison("too-long-id", "read model refused", headers=_replace("ce_id", b"x" * 80), postgres_only=True),
)


def event(stream_id: str, payload: ev.Payload | None = None, **changes: Any) -> Envelope:
    payload = payload or b.pledged()
    data = {**payload_data(payload), **changes}
    if isinstance(payload, ev.BatchPledged):
        data["pledge_id"] = f"pledge-{stream_id}"
    return Envelope(
        type=payload.event_type,
        source="pledge",
        subject=stream_id,
        data=data,
        actor="donor:xiaomi",
        correlation_id=stream_id,
    )


@dataclass
class Sent:
    """What the test produced, to compare with what the service did."""

    healthy: list[str] = field(default_factory=list)
    poisoned: dict[str, Poison] = field(default_factory=dict)
    rule_stream: str = ""
    parked: int = 0
    produced: int = 0


class Topic:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")

    async def send(
        self, key: bytes | None, headers: Headers, value: bytes | None, partition: int | None = None
    ) -> None:
        topic = self.settings.batch_topic
        await self.producer.send_and_wait(topic, value=value, key=key, headers=headers, partition=partition)

    async def event(self, envelope: Envelope) -> None:
        await self.send(envelope.subject.encode(), list(to_headers(envelope)), encode_data(envelope))


@pytest.fixture
async def warehouse(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, database_url: str
) -> AsyncIterator[tuple[Stack, Settings]]:
    async with warehouse_process(kafka_bootstrap, topic_prefix, tmp_path, database_url) as running:
        yield running


async def produce_everything(topic: Topic, postgres: bool) -> Sent:
    """Healthy batches between poisoned ones, each poison followed by a valid event of its own stream."""
    sent = Sent()
    for poison in POISONS:
        if poison.postgres_only and not postgres:
            continue
        stream_id = f"{poison.name}-{uuid.uuid4().hex[:6]}"
        good = event(stream_id, **poison.data)
        await topic.send(stream_id.encode(), poison.headers(list(to_headers(good))), poison.value(encode_data(good)))
        await topic.event(event(stream_id))
        healthy = event(f"healthy-{uuid.uuid4().hex[:6]}")
        await topic.event(healthy)
        sent.poisoned[stream_id] = poison
        sent.healthy.append(healthy.subject)
        sent.produced += 3
        sent.parked += 2
    await produce_rule_breaker(topic, sent)
    await topic.send(None, [("ce_type", b"nonsense")], b"no key", partition=0)
    sent.produced += 1
    sent.parked += 1
    return sent


async def produce_rule_breaker(topic: Topic, sent: Sent) -> None:
    """A stream whose first event is fine and whose second the fold refuses: received + shortfall != pledged."""
    stream_id = f"rule-{uuid.uuid4().hex[:6]}"
    for envelope in (event(stream_id), event(stream_id, b.received(quantity=900)), event(stream_id, b.inspected())):
        await topic.event(envelope)
    sent.rule_stream = stream_id
    sent.produced += 3
    sent.parked += 2


class Service:
    def __init__(self, stack: Stack, settings: Settings):
        self.url = stack.url("warehouse")
        self.headers = {"Authorization": f"Bearer {mint_token('ops', Role.admin, settings=settings)}"}
        self.http = httpx.AsyncClient(timeout=10.0, headers=self.headers)

    async def versions(self, batch_id: str) -> int:
        response = await self.http.get(f"{self.url}/batches/{batch_id}/events")
        return len(response.json()) if response.status_code == 200 else 0

    async def parked(self) -> list[dict[str, Any]]:
        response = await self.http.get(f"{self.url}/admin/parked", params={"limit": 500})
        response.raise_for_status()
        return list(response.json()["items"])

    async def live(self) -> bool:
        response = await self.http.get(f"{self.url}/health/live")
        return response.status_code == 200

    async def metric(self, name: str) -> float:
        text = (await self.http.get(f"{self.url}/metrics")).text
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + "{"))


async def read_dead_letters(settings: Settings, expected: int) -> list[ConsumerRecord]:
    """Everything on the dead-letter topic once it holds at least `expected` records: to its end, so that a
    record dead-lettered twice would show."""
    consumer = AIOKafkaConsumer(
        settings.dead_letter_topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: list[ConsumerRecord] = []
    try:
        async with asyncio.timeout(DEADLINE_SECONDS):
            ends = await _end_offsets(consumer, settings.dead_letter_topic, expected)
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    found.extend(records)
    finally:
        await consumer.stop()
    return found


async def _end_offsets(consumer: AIOKafkaConsumer, topic: str, expected: int) -> dict[Any, int]:
    deadline = time.monotonic() + END_OFFSETS_DEADLINE_SECONDS
    while True:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, partition) for partition in partitions]
        ends: dict[Any, int] = await consumer.end_offsets(tps) if tps else {}
        if sum(ends.values()) >= expected:
            return ends
        assert time.monotonic() < deadline, f"{topic} never reached {expected} records"
        await asyncio.sleep(POLL_SECONDS)


def header(record: ConsumerRecord, name: str) -> str:
    return next((v or b"").decode(errors="replace") for n, v in record.headers if n == name)


async def wait_all_applied(service: Service, batch_ids: list[str]) -> None:
    async def probe() -> bool:
        counts = await asyncio.gather(*(service.versions(batch_id) for batch_id in batch_ids))
        return all(count >= 1 for count in counts)

    await wait_until(probe, what=f"{len(batch_ids)} healthy batches applied", deadline=DEADLINE_SECONDS)


async def wait_parked(service: Service, count: int) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]] | None:
        parked = await service.parked()
        return parked if len(parked) >= count else None

    return await wait_until(probe, what=f"{count} parked events", deadline=DEADLINE_SECONDS)


def check_parked(parked: list[dict[str, Any]], sent: Sent) -> None:
    by_stream: dict[str, list[dict[str, Any]]] = {}
    for item in parked:
        by_stream.setdefault(item["stream_id"], []).append(item)
    for stream_id, poison in sent.poisoned.items():
        first, second = by_stream[stream_id]
        assert poison.reason in first["reason"], (poison.name, first["reason"])
        assert BEHIND in second["reason"] and second["offset"] > first["offset"]
    received, inspected = by_stream[sent.rule_stream]
    assert "must equal the 1000 pledged" in received["reason"] and BEHIND in inspected["reason"]
    (unkeyed,) = by_stream["unkeyed:0"]
    assert unkeyed["reason"].startswith("missing CloudEvents header(s): ce_id, ce_source")


def check_dead_letters(records: list[ConsumerRecord], parked: list[dict[str, Any]]) -> None:
    """One dead-letter record per parked event, keyed by its stream, naming its reason and origin."""
    by_origin = {f"{p['topic']}/{p['partition']}/{p['offset']}": p for p in parked}
    assert len(records) == len(parked), "every parked event is dead-lettered exactly once"
    for record in records:
        origin = by_origin[header(record, "dlq_origin")]
        assert header(record, "dlq_reason") == origin["reason"]
        assert record.key is not None and record.key.decode() == origin["stream_id"]
        assert header(record, "dlq_consumer") == origin["consumer"]


def log_problems(stack: Stack) -> list[str]:
    """Retry loops (a batch that fails again and again) and tracebacks are what a crash loop leaves behind."""
    text = stack.services["warehouse"].log_path.read_text(errors="replace")
    return [line for line in text.splitlines() if "consumer batch failed" in line or "Traceback" in line]


async def test_poison_events_are_dead_lettered_and_parked_while_other_batches_flow(
    warehouse: tuple[Stack, Settings], database_url: str
) -> None:
    stack, settings = warehouse
    started = time.monotonic()
    service = Service(stack, settings)
    topic = Topic(settings)
    await topic.producer.start()
    try:
        sent = await produce_everything(topic, postgres=database_url.startswith("postgresql"))
        sentinel = event(f"after-{uuid.uuid4().hex[:6]}")
        await topic.event(sentinel)
        await wait_all_applied(service, [*sent.healthy, sentinel.subject])
        parked = await wait_parked(service, sent.parked)
        assert len(parked) == sent.parked
        check_parked(parked, sent)
        for stream_id in sent.poisoned:
            assert await service.versions(stream_id) == 0, f"nothing of {stream_id} was applied"
        assert await service.versions(sent.rule_stream) == 1, "only the event before the refused one"
        check_dead_letters(await read_dead_letters(settings, sent.parked), parked)
        process = stack.services["warehouse"].process
        assert await service.live() and process is not None and process.poll() is None
        assert await service.metric("aidtrail_events_parked") == sent.parked
        assert not log_problems(stack), log_problems(stack)

        await crash_and_check_parked_state_survives(stack, service, topic, sent)
    finally:
        await topic.producer.stop()
        await service.http.aclose()
    print(
        f"\nFAULT6 figures ({database_url.split(':')[0]}): {sent.produced + 1} records produced, "
        f"{len(sent.poisoned) + 2} poisoned streams, {sent.parked} parked and dead-lettered, "
        f"{len(sent.healthy) + 1} healthy batches applied, 0 lost, 0 applied out of order, "
        f"run time {time.monotonic() - started:.1f}s"
    )


async def crash_and_check_parked_state_survives(stack: Stack, service: Service, topic: Topic, sent: Sent) -> None:
    """After SIGKILL and restart nothing is parked twice and a parked stream stays parked; others still flow."""
    stack.kill("warehouse")
    await stack.restart("warehouse")
    parked_stream = next(iter(sent.poisoned))
    late, healthy = event(parked_stream, b.received()), event(f"late-{uuid.uuid4().hex[:6]}")
    await topic.event(late)
    await topic.event(healthy)
    await wait_all_applied(service, [healthy.subject])
    parked = await wait_parked(service, sent.parked + 1)
    assert len(parked) == sent.parked + 1, "nothing parked twice after the restart"
    (late_parked,) = [item for item in parked if item["event_id"] == late.id]
    assert BEHIND in late_parked["reason"], "the stream stays parked across the restart"
    assert await service.versions(parked_stream) == 0
    assert not log_problems(stack), log_problems(stack)
