"""Dropping a scratch database falls back to a plain DROP when the role may not force it."""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped,unused-ignore]
import pytest

from shared.devstack import scratch_databases
from shared.devstack.scratch_databases import drop_database


class ScriptedServer:
    """Answers each statement with the next scripted outcome and records what it was sent."""

    def __init__(self, *outcomes: Exception | None) -> None:
        self.outcomes = list(outcomes)
        self.statements: list[str] = []

    async def execute(self, statement: str) -> None:
        self.statements.append(statement)
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome


async def test_a_forced_drop_that_succeeds_is_the_only_statement() -> None:
    server = ScriptedServer(None)
    await drop_database(server.execute, "t_x")
    assert server.statements == ['DROP DATABASE IF EXISTS "t_x" WITH (FORCE)']


async def test_refused_force_falls_back_to_plain_drop_retried_while_in_use() -> None:
    server = ScriptedServer(
        asyncpg.InsufficientPrivilegeError("must be a member of the role whose process is being terminated"),
        asyncpg.ObjectInUseError("database is being accessed by other users"),
        None,
    )
    await drop_database(server.execute, "t_x")
    assert server.statements == [
        'DROP DATABASE IF EXISTS "t_x" WITH (FORCE)',
        'DROP DATABASE IF EXISTS "t_x"',
        'DROP DATABASE IF EXISTS "t_x"',
    ]


async def test_a_database_that_stays_in_use_raises_after_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scratch_databases, "DROP_RETRY_SECONDS", 0.0)
    server = ScriptedServer(
        asyncpg.InsufficientPrivilegeError("refused"),
        asyncpg.ObjectInUseError("in use"),
    )
    with pytest.raises(asyncpg.ObjectInUseError):
        await drop_database(server.execute, "t_x")
