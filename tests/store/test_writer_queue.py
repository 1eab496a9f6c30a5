"""SQLite writers of one process queue in asyncio, in arrival order, before they take a connection; PostgreSQL's
writers do not queue at all (it has row locks)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from shared.store.database import Database
from shared.store.migrations import upgrade
from shared.store.schema import chain_head
from tests.fixtures.databases import PLEDGE_MIGRATIONS, sqlite_url


async def _migrated(url: str) -> Database:
    database = Database.connect(url)
    await upgrade(database, PLEDGE_MIGRATIONS)
    return database


@pytest.fixture
async def sqlite_database(tmp_path: Path) -> AsyncIterator[Database]:
    database = await _migrated(sqlite_url(tmp_path))
    yield database
    await database.dispose()


@pytest.fixture
async def any_database(database_url: str) -> AsyncIterator[Database]:
    database = await _migrated(database_url)
    yield database
    await database.dispose()


async def _write(database: Database, source: str, order: list[str], hold: asyncio.Event | None = None) -> None:
    async with database.transaction() as conn:
        order.append(f"{source} in")
        await conn.execute(chain_head.insert().values(source=source, sequence=0, hash="h"))
        if hold is not None:
            await hold.wait()
        order.append(f"{source} out")


async def _until(condition: object) -> None:
    """Let the other tasks run until `condition()` holds (no clock involved)."""
    assert callable(condition)
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def test_sqlite_writers_wait_in_arrival_order_without_holding_a_connection(
    sqlite_database: Database,
) -> None:
    database = sqlite_database
    assert database.writers is not None
    order: list[str] = []
    release = asyncio.Event()
    first = asyncio.create_task(_write(database, "first", order, release))
    await _until(lambda: order == ["first in"])
    queued = [asyncio.create_task(_write(database, name, order)) for name in ("second", "third")]
    await asyncio.sleep(0)
    assert database.writers.lock().locked()
    pool = database.writer.sync_engine.pool
    assert pool.checkedout() == 1  # type: ignore[attr-defined]  # the waiting writers hold no connection
    release.set()
    await asyncio.gather(first, *queued)
    assert order == ["first in", "first out", "second in", "second out", "third in", "third out"]
    async with database.read() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(chain_head))).scalar() == 3


async def test_a_failed_writer_lets_the_next_one_in(any_database: Database) -> None:
    database = any_database
    with pytest.raises(RuntimeError):
        async with database.transaction() as conn:
            await conn.execute(chain_head.insert().values(source="rolled-back", sequence=0, hash="h"))
            raise RuntimeError("the command failed")
    order: list[str] = []
    await _write(database, "next", order)
    assert order == ["next in", "next out"]
    async with database.read() as conn:
        sources = [row.source for row in await conn.execute(sa.select(chain_head.c.source))]
    assert sources == ["next"]


async def test_postgresql_writers_do_not_queue(postgres_url: str) -> None:
    database = await _migrated(postgres_url)
    assert database.writers is None
    try:
        await _two_writers_at_once(database)
    finally:
        await database.dispose()


async def _two_writers_at_once(database: Database) -> None:
    order: list[str] = []
    release = asyncio.Event()
    held = [asyncio.create_task(_write(database, name, order, release)) for name in ("a", "b")]
    await _until(lambda: sorted(order) == ["a in", "b in"])
    release.set()
    await asyncio.gather(*held)


def test_one_database_serves_one_event_loop_after_another(tmp_path: Path) -> None:
    """Tests and tools use one Database from several loops in turn; a lock bound to the first loop would fail
    the second loop's first contended write."""
    database = asyncio.run(_migrated(sqlite_url(tmp_path)))

    async def contended(tag: str) -> list[str]:
        order: list[str] = []
        release = asyncio.Event()
        first = asyncio.create_task(_write(database, f"{tag}-1", order, release))
        await _until(lambda: order == [f"{tag}-1 in"])
        second = asyncio.create_task(_write(database, f"{tag}-2", order))
        await asyncio.sleep(0)
        release.set()
        await asyncio.gather(first, second)
        return order

    try:
        assert asyncio.run(contended("a")) == ["a-1 in", "a-1 out", "a-2 in", "a-2 out"]
        assert asyncio.run(contended("b")) == ["b-1 in", "b-1 out", "b-2 in", "b-2 out"]
    finally:
        asyncio.run(database.dispose())
