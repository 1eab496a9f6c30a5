"""The Kafka log as the fault checks read it: every record of the project's topics, by ce_id, command identity
and key.

Read with its own group-less consumer from the beginning to the end offsets captured at the start, so reading it
changes no consumer group's position and the read always ends.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.events.registry import BATCH_EVENT_TYPES
from shared.settings import Settings

LOG_READ_DEADLINE_SECONDS = 120.0


class FaultCheckError(AssertionError):
    """The system did not settle, or the log could not be read completely, before the deadline."""


@dataclass(frozen=True, slots=True)
class Expected:
    """An event an acknowledged command must have produced, named by what it is rather than by its id: a command
    that was somehow applied twice would produce two different ids for the same (type, subject)."""

    event_type: str
    subject: str


@dataclass
class LogIndex:
    """Every record of the project's topics, counted by ce_id and grouped by command identity and by key."""

    copies: Counter[str] = field(default_factory=Counter)
    identities: dict[Expected, set[str]] = field(default_factory=dict)
    streams: dict[str, list[str]] = field(default_factory=dict)
    topic_ids: dict[str, set[str]] = field(default_factory=dict)
    end_offsets: dict[tuple[str, int], int] = field(default_factory=dict)

    @property
    def events(self) -> int:
        return len(self.copies)

    @property
    def republished(self) -> int:
        """Extra copies of an already published event (same ce_id): harmless, every consumer drops them."""
        return sum(count - 1 for count in self.copies.values())

    def add(self, topic: str, headers: Mapping[str, str]) -> None:
        event_id = headers.get("ce_id", "")
        self.copies[event_id] += 1
        if self.copies[event_id] > 1:
            return
        identity = Expected(headers.get("ce_type", ""), headers.get("ce_subject", ""))
        self.identities.setdefault(identity, set()).add(event_id)
        self.topic_ids.setdefault(topic, set()).add(event_id)
        if identity.event_type in BATCH_EVENT_TYPES:
            self.streams.setdefault(identity.subject, []).append(event_id)


def project_topics(settings: Settings) -> list[str]:
    return [settings.batch_topic, settings.reference_topic]


async def topic_partitions(settings: Settings) -> list[TopicPartition]:
    """Every partition of the project's topics; a topic that does not exist is an error, never an empty list (which
    would make an unread log look complete)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        described = await admin.describe_topics(project_topics(settings))
    finally:
        await admin.close()
    missing = [topic["topic"] for topic in described if topic["error_code"] or not topic["partitions"]]
    if missing:
        raise FaultCheckError(f"topics {missing} cannot be described: {described}")
    return [TopicPartition(topic["topic"], p["partition"]) for topic in described for p in topic["partitions"]]


async def read_log(settings: Settings, deadline: float = LOG_READ_DEADLINE_SECONDS) -> LogIndex:
    """Read both topics from the beginning to the end offsets captured at the start (records of one key stay in
    partition order, which is the order every consumer applies them in)."""
    partitions = await topic_partitions(settings)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False, request_timeout_ms=30_000
    )
    await consumer.start()
    try:
        return await _read_all(consumer, partitions, time.monotonic() + deadline)
    finally:
        await consumer.stop()


async def _read_all(consumer: AIOKafkaConsumer, partitions: list[TopicPartition], until: float) -> LogIndex:
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    index = LogIndex(end_offsets={(tp.topic, tp.partition): offset for tp, offset in ends.items()})
    remaining = {tp for tp, offset in ends.items() if offset > 0}
    while remaining:
        if time.monotonic() > until:
            raise FaultCheckError(f"the log could not be read to its end in time; still missing {sorted(remaining)}")
        batches = await consumer.getmany(*remaining, timeout_ms=500)
        for tp, records in batches.items():
            for record in records:
                if record.offset < ends[tp]:
                    index.add(tp.topic, {name: value.decode() for name, value in record.headers or ()})
            if await consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
    return index
