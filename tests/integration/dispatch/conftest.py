"""The dispatch service in-process against the real broker, on SQLite and on PostgreSQL, its world seeded.

Dispatch learns only from events, so each test seeds the test's own topics with real, valid events (sites,
recipients, and batches from pledged to picked) exactly as the other services would publish them, then drives
shipments through the HTTP API and checks what dispatch wrote, both in its store and on Kafka.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer

from tests.harness import running_service, service_settings
from tests.integration.dispatch.support import Dispatch, Seeder, seed_world


@pytest.fixture
async def dispatch(database_url: str, topic_prefix: str, kafka_bootstrap: str) -> AsyncIterator[Dispatch]:
    settings = service_settings("dispatch", database_url, topic_prefix, kafka_bootstrap, topic_partitions=3)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        async with running_service("dispatch", settings) as service:
            world = Dispatch(service, Seeder(producer, settings))
            await seed_world(world)
            yield world
    finally:
        await producer.stop()
