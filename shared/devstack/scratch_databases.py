"""Dropping the throwaway PostgreSQL databases that tests and benchmarks create per run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import asyncpg  # type: ignore[import-untyped,unused-ignore]

DROP_RETRY_SECONDS = 20.0


async def drop_database(execute: Callable[[str], Awaitable[None]], name: str) -> None:
    """Drop ``name`` even while an autovacuum worker is connected to it.

    ``WITH (FORCE)`` ends the sessions a run left behind, but PostgreSQL refuses it to a role
    that is neither a superuser nor in ``pg_signal_backend`` when one of those sessions is an
    autovacuum worker. A plain ``DROP DATABASE`` stops autovacuum workers itself, so it is the
    fallback, retried briefly while the run's own sessions finish closing.
    """
    try:
        await execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    except asyncpg.InsufficientPrivilegeError:
        pass
    deadline = time.monotonic() + DROP_RETRY_SECONDS
    while True:
        try:
            await execute(f'DROP DATABASE IF EXISTS "{name}"')
            return
        except asyncpg.ObjectInUseError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
