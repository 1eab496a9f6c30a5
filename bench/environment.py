"""What the benchmarks run against: the project's own Kafka broker and fresh databases, set up by the bench itself.

A fresh machine needs nothing started by hand: the broker is started through shared.broker (a no-op when it
already answers), and every measured server gets a database of its own, created empty and dropped afterwards, so
one run never measures a database grown by the run before.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg  # type: ignore[import-untyped,unused-ignore]
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy.engine import make_url

from shared.broker import start_async
from shared.broker.probe import wait_until_answering
from shared.devstack.scratch_databases import drop_database

BOOTSTRAP_ENV = "AIDTRAIL_KAFKA_BOOTSTRAP"
POSTGRES_ENV = "AIDTRAIL_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://aidtrail:aidtrail@127.0.0.1:5432/aidtrail_test"
EXTERNAL_BROKER_DEADLINE_S = 30.0
BACKENDS = ("sqlite", "postgres")


class BenchEnvironmentError(RuntimeError):
    """Something the bench needs is missing; the message says how to provide it."""


async def kafka_bootstrap() -> str:
    """An answering broker: the one named by AIDTRAIL_KAFKA_BOOTSTRAP, or the project's own, started if needed."""
    external = os.environ.get(BOOTSTRAP_ENV)
    if external:
        if not await wait_until_answering(external.split(",")[0].strip(), EXTERNAL_BROKER_DEADLINE_S):
            raise BenchEnvironmentError(f"{BOOTSTRAP_ENV}={external} does not answer; unset it to use our broker")
        return external
    return (await start_async()).bootstrap


async def drop_topics(kafka: str, prefix: str) -> None:
    """Delete the topics of one measured run (`prefix.*`): every run makes fresh topics, and thousands of
    leftover partitions are what exhausts a small development broker's heap."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka, request_timeout_ms=30_000)
    await admin.start()
    try:
        names = [name for name in await admin.list_topics() if name.startswith(f"{prefix}.")]
        if names:
            await admin.delete_topics(names, timeout_ms=30_000)
    finally:
        await admin.close()


@asynccontextmanager
async def run_topics(kafka: str, prefix: str) -> AsyncIterator[str]:
    """A topic prefix for one run; its topics are deleted afterwards, whatever happened (best effort)."""
    try:
        yield prefix
    finally:
        with contextlib.suppress(Exception):
            await drop_topics(kafka, prefix)


def postgres_admin_url() -> str:
    return os.environ.get(POSTGRES_ENV) or DEFAULT_POSTGRES_URL


async def _admin(statement: str) -> None:
    url = make_url(postgres_admin_url())
    try:
        conn = await asyncpg.connect(
            host=url.host, port=url.port, user=url.username, password=url.password, database=url.database, timeout=10
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise BenchEnvironmentError(
            f"PostgreSQL is not usable at {url.render_as_string(hide_password=True)} ({exc}); run "
            f"deploy/postgres/ensure-postgres.sh or set {POSTGRES_ENV}, or leave postgres out with --backends sqlite"
        ) from exc
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_database(backend: str, workdir: Path) -> AsyncIterator[str]:
    """The SQLAlchemy URL of a new, empty database of `backend`; dropped (PostgreSQL) or left in workdir."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / f'bench-{uuid.uuid4().hex[:12]}.db'}"
        return
    name = f"bench_{uuid.uuid4().hex}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(postgres_admin_url()).set(database=name).render_as_string(hide_password=False)
    finally:
        await drop_database(_admin, name)


@asynccontextmanager
async def workdir() -> AsyncIterator[Path]:
    """Scratch space for SQLite files and server logs, removed at the end of the run."""
    with tempfile.TemporaryDirectory(prefix="aidtrail-bench-") as path:
        yield Path(path)
