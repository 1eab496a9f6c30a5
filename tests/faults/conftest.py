"""Fixtures of the fault tests: private servers that a test may kill without harming any other test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.faults.servers import PrivateKafka, PrivatePostgres


@pytest_asyncio.fixture(scope="package")
async def private_broker(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PrivateKafka]:
    """One single-node broker for the faults that kill a broker or need one nobody else loads; each test makes
    sure it runs (`await private_broker.start()`) since an earlier test may have killed it."""
    kafka = PrivateKafka(tmp_path_factory.mktemp("private-kafka"))
    await kafka.start()
    yield kafka
    await kafka.stop()


@pytest_asyncio.fixture
async def private_cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PrivateKafka]:
    """A 3-node KRaft cluster (replication factor 3, min.insync.replicas 2), stopped at the end whatever happens."""
    kafka = PrivateKafka(tmp_path_factory.mktemp("private-cluster"), nodes=3)
    try:
        await kafka.start()
        yield kafka
    finally:
        await kafka.stop()


@pytest_asyncio.fixture
async def private_postgres() -> AsyncIterator[PrivatePostgres]:
    """A PostgreSQL server of this test's own, so a restart never touches the shared server on 5432 that other
    tests use; stopped and removed at the end whatever happened."""
    server = PrivatePostgres()
    try:
        await server.init()
        await server.start()
        yield server
    finally:
        await server.remove()
