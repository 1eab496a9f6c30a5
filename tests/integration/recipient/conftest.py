"""The recipient service in-process, against the real broker, on SQLite and on PostgreSQL, and a seeder of its
batch topic.

Delivered batches are produced straight onto the test's batch topic as real, valid CloudEvents (pledged ->
received -> inspected -> allocated -> picked -> dispatched -> delivered): the path by which the service learns
batches in production, without depending on the warehouse and dispatch services.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer

from tests.harness import ServiceHandle, running_service, service_settings
from tests.integration.recipient.support import BatchSeeder


@pytest.fixture
async def service(database_url: str, topic_prefix: str, kafka_bootstrap: str) -> AsyncIterator[ServiceHandle]:
    settings = service_settings("recipient", database_url, topic_prefix, kafka_bootstrap)
    async with running_service("recipient", settings) as handle:
        yield handle


@pytest.fixture
async def seeder(service: ServiceHandle, kafka_bootstrap: str) -> AsyncIterator[BatchSeeder]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        yield BatchSeeder(producer, service.settings.batch_topic)
    finally:
        await producer.stop()
