"""The project creates its topics itself, with explicit partitions and infinite retention, and never relies on
broker auto-creation: a mistyped topic name must fail loudly, not silently create an empty log."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.messaging.kafka_config import connection_options
from shared.settings import Settings

log = logging.getLogger(__name__)

TOPIC_READY_SECONDS = 30.0
TOPIC_POLL_SECONDS = 0.1
EVENT_LOG_CONFIG = {"retention.ms": "-1", "cleanup.policy": "delete"}


def project_topics(settings: Settings) -> list[NewTopic]:
    config = dict(EVENT_LOG_CONFIG)
    if settings.topic_replication > 1:
        config["min.insync.replicas"] = str(min(2, settings.topic_replication))
    names = (settings.batch_topic, settings.reference_topic, settings.dead_letter_topic)
    return [
        NewTopic(
            name=name,
            num_partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication,
            topic_configs=config,
        )
        for name in names
    ]


async def ensure_topics(settings: Settings, topics: list[NewTopic] | None = None) -> list[str]:
    """Create whichever project topics are missing; returns the names created. Safe to call from every replica."""
    wanted = topics or project_topics(settings)
    admin = AIOKafkaAdminClient(**connection_options(settings), request_timeout_ms=15_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [topic for topic in wanted if topic.name not in existing]
        if missing:
            await _create(admin, missing)
            await _wait_for_partitions(admin, missing)
        return [topic.name for topic in missing]
    finally:
        await admin.close()


async def _wait_for_partitions(admin: AIOKafkaAdminClient, created: list[NewTopic]) -> None:
    """A consumer that joins while a new topic still shows no partitions gets none until its next metadata
    refresh, minutes later; so creation only counts as done once every partition is visible."""
    names = [topic.name for topic in created]
    expected = {topic.name: topic.num_partitions for topic in created}
    async with asyncio.timeout(TOPIC_READY_SECONDS):
        while True:
            described = await admin.describe_topics(names)
            seen = {d["topic"]: len(d.get("partitions", [])) for d in described if not d.get("error_code")}
            if all(seen.get(name, 0) >= count for name, count in expected.items()):
                return
            await asyncio.sleep(TOPIC_POLL_SECONDS)


async def _create(admin: AIOKafkaAdminClient, missing: list[NewTopic]) -> None:
    try:
        await admin.create_topics(missing)
    except TopicAlreadyExistsError:
        log.info("topics were created concurrently by another replica")
    log.info("created topics", extra={"topics": [t.name for t in missing]})
