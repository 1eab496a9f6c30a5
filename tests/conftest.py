"""Fixtures shared by every suite: the real Kafka broker, both database backends, a topic prefix per test."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from tests.harness import new_topic_prefix

CLEANUP_SECONDS = 15.0

pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.databases"]


@pytest.fixture
async def topic_prefix() -> AsyncIterator[str]:
    """A prefix of the test's own; its topics are deleted afterwards so the broker stays small and quick to restart."""
    prefix = new_topic_prefix()
    yield prefix
    await delete_topics_with_prefix(prefix)


async def delete_topics_with_prefix(prefix: str) -> None:
    bootstrap = os.environ.get("AIDTRAIL_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        async with asyncio.timeout(CLEANUP_SECONDS):
            await admin.start()
            doomed = [name for name in await admin.list_topics() if name.startswith(f"{prefix}.")]
            if doomed:
                await admin.delete_topics(doomed)
    except (KafkaError, TimeoutError, OSError):
        pass  # best effort: a test that stopped the broker leaves its topics for the next cleanup
    finally:
        await admin.close()
