"""Fixtures shared by every suite: the real Kafka broker, both database backends, a topic prefix per test."""

from __future__ import annotations

import pytest

from tests.harness import new_topic_prefix

pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.databases"]


@pytest.fixture
def topic_prefix() -> str:
    return new_topic_prefix()
