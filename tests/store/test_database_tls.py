"""Loopback PostgreSQL without TLS unless the URL or PGSSLMODE asks for it; other hosts keep asyncpg's default."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from shared.store.database import Database, postgres_connect_args

LOOPBACK = "postgresql+asyncpg://u:p@127.0.0.1:5432/db"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_a_loopback_url_connects_without_tls(host: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGSSLMODE", raising=False)
    assert postgres_connect_args(f"postgresql+asyncpg://u:p@{host}:5432/db") == {"ssl": "disable"}


@pytest.mark.parametrize(
    "url",
    [
        f"{LOOPBACK}?ssl=require",
        f"{LOOPBACK}?sslmode=verify-full",
        "postgresql+asyncpg://u:p@db.example.org:5432/db",
        "postgresql+asyncpg://u:p@/db",  # no host: a Unix socket or PGHOST decides
    ],
)
def test_tls_stays_as_asked_or_as_asyncpg_decides(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGSSLMODE", raising=False)
    assert postgres_connect_args(url) == {}


def test_pgsslmode_wins_over_the_loopback_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGSSLMODE", "require")
    assert postgres_connect_args(LOOPBACK) == {}


async def test_the_test_servers_loopback_connections_are_plain(postgres_url: str) -> None:
    database = Database.connect(postgres_url)
    try:
        async with database.read() as conn:
            query = sa.text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert (await conn.execute(query)).scalar() is False
    finally:
        await database.dispose()
