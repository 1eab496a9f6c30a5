"""The project creates its topics itself, with explicit partitions and infinite retention, and never relies on
broker auto-creation: a mistyped topic name must fail loudly, not silently create an empty log."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.messaging.kafka_config import connection_options
from shared.settings import Settings

log = logging.getLogger(__name__)

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
        return [topic.name for topic in missing]
    finally:
        await admin.close()


async def _create(admin: AIOKafkaAdminClient, missing: list[NewTopic]) -> None:
    try:
        await admin.create_topics(missing)
    except TopicAlreadyExistsError:
        log.info("topics were created concurrently by another replica")
    log.info("created topics", extra={"topics": [t.name for t in missing]})
