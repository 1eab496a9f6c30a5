"""Follow aidtrail's Kafka topics directly, the way docs/events.md recommends for apps that speak Kafka.

    python examples/kafka_follower.py --bootstrap 127.0.0.1:9092 --group reliefmap.follow \
        --type org.aidtrail.batch.delivered. --from earliest --max-events 20 --timeout 60

It prints one line per event (`<ce_type> <ce_subject> <ce_id> <topic>/<partition>/<offset>`), reading the
CloudEvents `ce_` headers; upcasts old event versions to the newest one it knows; drops events whose ce_id it
has already handled (delivery is at-least-once); and stops after --max-events events or --timeout seconds, so
CI can run it. Without --group it reads with no consumer group and commits nothing (replay or inspection);
with --group it joins that group and commits after handling each batch of records (a service of your own).
--from takes earliest, latest, or an ISO 8601 time (via offsets_for_times). It needs only aiokafka.
Exit status: 0 when it stopped on --max-events, 2 on timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient

DEDUP_MEMORY = 100_000


def upcast_received_v1(data: dict[str, Any]) -> dict[str, Any]:
    """batch.received.v1 named the site in free text; v2 has a site id (the same rule aidtrail applies)."""
    return {
        "site_id": "-".join(data["site"].lower().split()),
        "quantity_received": data["quantity"],
        "shortfall": data.get("shortfall", 0),
        "shortfall_reason": "recorded before shortfall reasons were required" if data.get("shortfall") else None,
        "condition": "unknown",
    }


# Old version -> (newer version, step). Apply steps until none applies; the AsyncAPI document lists every version.
UPCASTERS: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "org.aidtrail.batch.received.v1": ("org.aidtrail.batch.received.v2", upcast_received_v1),
}


def upcast(event_type: str, data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    while event_type in UPCASTERS:
        event_type, step = UPCASTERS[event_type]
        data = step(data)
    return event_type, data


def ce_headers(record: ConsumerRecord) -> dict[str, str]:
    """Kafka binary mode: every CloudEvents attribute is a header, ce_id, ce_type, ce_subject ..."""
    return {name: value.decode() for name, value in record.headers or () if value is not None}


def type_wanted(patterns: list[str], event_type: str) -> bool:
    return not patterns or any(event_type == p or (p.endswith(".") and event_type.startswith(p)) for p in patterns)


class SeenIds:
    """The ids handled lately; at-least-once delivery means the same ce_id can come twice."""

    def __init__(self, capacity: int = DEDUP_MEMORY) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, event_id: str) -> bool:
        """True when the id is new."""
        if event_id in self._ids:
            return False
        self._ids[event_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True


@dataclass
class Follower:
    types: list[str]
    max_events: int
    seen: SeenIds = field(default_factory=SeenIds)
    handled: dict[TopicPartition, int] = field(default_factory=dict)
    received: int = 0
    duplicates: int = 0

    @property
    def done(self) -> bool:
        return self.received >= self.max_events

    def handle(self, record: ConsumerRecord) -> None:
        self.handled[TopicPartition(record.topic, record.partition)] = record.offset + 1
        headers = ce_headers(record)
        event_type = headers.get("ce_type", "")
        if not event_type or not type_wanted(self.types, event_type):
            return  # not ours, or not a CloudEvent at all
        if not self.seen.add(headers["ce_id"]):
            self.duplicates += 1
            return
        newest_type, _data = upcast(event_type, json.loads(record.value))
        shown = event_type if newest_type == event_type else f"{event_type}->{newest_type}"
        where = f"{record.topic}/{record.partition}/{record.offset}"
        print(f"{shown} {headers['ce_subject']} {headers['ce_id']} {where}", flush=True)
        self.received += 1


class _SeekOnAssign(ConsumerRebalanceListener):  # type: ignore[misc]
    """With a group, where to start is decided when partitions are assigned (a --from time: the first time).

    The starting position of every assigned partition is then committed with the first handled batch, so a
    partition that had nothing new is not left without a commit (where `latest` would skip what comes next).
    """

    def __init__(self, consumer: AIOKafkaConsumer, start: str, follower: Follower) -> None:
        self.consumer = consumer
        self.start = start
        self.follower = follower
        self.seeked = False

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Nothing to flush: offsets are committed after each handled batch."""
        for tp in revoked:
            self.follower.handled.pop(tp, None)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if not self.seeked and assigned:
            await seek_start(self.consumer, list(assigned), self.start, only_if_timestamp=True)
            self.seeked = True
        for tp in assigned:
            self.follower.handled.setdefault(tp, await self.consumer.position(tp))


async def seek_start(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], start: str, *, only_if_timestamp: bool = False
) -> None:
    if start == "earliest" and not only_if_timestamp:
        await consumer.seek_to_beginning(*partitions)
    elif start == "latest" and not only_if_timestamp:
        await consumer.seek_to_end(*partitions)
    elif start not in ("earliest", "latest"):
        moment = int(datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp() * 1000)
        found = await consumer.offsets_for_times({tp: moment for tp in partitions})
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, found[tp].offset if found.get(tp) else ends[tp])


async def list_partitions(bootstrap: str, topics: list[str]) -> list[TopicPartition]:
    """Ask the cluster (a consumer only knows the partitions of topics it has already been told about)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return [
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        if topic["error_code"] == 0
        for partition in sorted(topic["partitions"], key=lambda p: int(p["partition"]))
    ]


async def open_consumer(args: argparse.Namespace, follower: Follower) -> AIOKafkaConsumer:
    topics = [f"{args.topic_prefix}.batch-events", f"{args.topic_prefix}.reference-events"]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="latest" if args.start == "latest" else "earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    if args.group:
        consumer.subscribe(topics, listener=_SeekOnAssign(consumer, args.start, follower))
        return consumer
    partitions = await list_partitions(args.bootstrap, topics)
    if not partitions:
        await consumer.stop()
        raise SystemExit(f"no partitions found for {topics}: is the prefix right and have the services started?")
    consumer.assign(partitions)
    await seek_start(consumer, partitions, args.start)
    return consumer


async def follow(consumer: AIOKafkaConsumer, follower: Follower, commit: bool) -> None:
    while not follower.done:
        batches = await consumer.getmany(timeout_ms=500)
        for records in batches.values():
            for record in records:
                follower.handle(record)
                if follower.done:
                    break
        if commit and follower.handled:
            await consumer.commit(dict(follower.handled))  # exactly what was handled, never past it


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Follow aidtrail events on Kafka.")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic-prefix", default="aidtrail", help="AIDTRAIL_TOPIC_PREFIX of the deployment.")
    parser.add_argument("--group", help="Your own consumer group, <app>.<purpose>; never a service's group.")
    parser.add_argument("--from", dest="start", default="latest", help="earliest, latest or an ISO 8601 time.")
    parser.add_argument("--type", action="append", default=[], help="ce_type or prefix ending in '.'; repeatable.")
    parser.add_argument("--max-events", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=60.0)
    return parser.parse_args(argv)


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    follower = Follower(args.type, args.max_events)
    started = time.monotonic()
    consumer = await open_consumer(args, follower)
    status = 0
    try:
        await asyncio.wait_for(follow(consumer, follower, commit=bool(args.group)), timeout=args.timeout)
    except TimeoutError:
        status = 2
    finally:
        await consumer.stop()
    print(
        f"received {follower.received} events in {time.monotonic() - started:.1f}s "
        f"({follower.duplicates} duplicates dropped)",
        file=sys.stderr,
    )
    return status


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
