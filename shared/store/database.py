"""Async engines for a service's own database, SQLite (embedded default) or PostgreSQL (production).

SQLite allows one writer at a time. Write transactions therefore start with BEGIN IMMEDIATE, so that two writers
queue on the busy timeout instead of failing on a read-to-write lock upgrade; reads use a separate engine and
never wait for writers (WAL mode). Within one process, writers also queue on an asyncio lock before they take a
connection: SQLite's busy handler sleeps in steps of 1 to 100 ms while the lock is held, so a writer that lost the
race would idle long after the lock was free, and each sleeping writer holds a pooled connection and a thread.
The busy timeout still arbitrates between processes sharing the file.

PostgreSQL on a loopback address (127.0.0.1, ::1, localhost) is reached without TLS unless the URL asks for it
(`?ssl=...` or `?sslmode=...`) or PGSSLMODE is set: asyncpg's default, "prefer", negotiates TLS whenever the
server offers it, which costs a handshake per new connection and encryption on every round trip for traffic that
never leaves the host. Any other host keeps asyncpg's default.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 30_000
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
TLS_PARAMETERS = frozenset({"ssl", "sslmode"})


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached; the API answers 503 with Retry-After instead of a 500."""


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _configure_sqlite(engine: AsyncEngine, *, immediate: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _make_engine(url: str, *, immediate: bool) -> AsyncEngine:
    if is_sqlite(url):
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine, immediate=immediate)
        return engine
    return create_async_engine(
        url,
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
        pool_timeout=5,
        connect_args=postgres_connect_args(url),
    )


def postgres_connect_args(url: str) -> dict[str, Any]:
    """No TLS to a loopback server unless the URL or PGSSLMODE asks for it (see the module's docstring)."""
    parsed = make_url(url)
    if parsed.host not in LOOPBACK_HOSTS or TLS_PARAMETERS & parsed.query.keys() or os.environ.get("PGSSLMODE"):
        return {}
    return {"ssl": "disable"}


class _WriterQueue:
    """FIFO admission of this process's SQLite writers, one at a time.

    An asyncio.Lock belongs to the event loop it first waits on; tests and tools may use one Database from several
    loops in turn, so the lock is made anew for each loop.
    """

    def __init__(self) -> None:
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:
            self._lock, self._loop = asyncio.Lock(), loop
        return self._lock


@dataclass
class Database:
    """A writer engine for transactions that change state and a reader engine for queries."""

    url: str
    writer: AsyncEngine
    reader: AsyncEngine
    writers: _WriterQueue | None = None

    @classmethod
    def connect(cls, url: str) -> Database:
        writer = _make_engine(url, immediate=True)
        if is_sqlite(url):
            return cls(url=url, writer=writer, reader=_make_engine(url, immediate=False), writers=_WriterQueue())
        return cls(url=url, writer=writer, reader=writer)

    @property
    def dialect(self) -> str:
        return self.writer.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """On SQLite, queued behind this process's other writers first (see the module's docstring); PostgreSQL
        has row locks and many writers at once, so there it is the engine's transaction alone."""
        if self.writers is None:
            async with self.writer.begin() as connection:
                yield connection
            return
        async with self.writers.lock(), self.writer.begin() as connection:
            yield connection

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.reader.connect() as connection:
            yield connection

    async def ping(self) -> bool:
        try:
            async with self.reader.connect() as connection:
                await connection.execute(sa.text("SELECT 1"))
        except Exception:
            return False
        return True

    async def dispose(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()
