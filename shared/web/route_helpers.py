"""Small pieces that the services' route modules had each written out the same way.

Kept here so that a write route in any service runs its decision the same way, names new entities with the same
short ids, and counts a filtered list for its page the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from fastapi import Header
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.events.envelope import format_time, new_event_id, utc_now
from shared.web.auth import Principal
from shared.web.commands import Decide, execute, fingerprint
from shared.web.pagination import PageParams
from shared.web.runtime import ServiceRuntime

IDEMPOTENCY = Header(None, alias="Idempotency-Key", description="Repeat a request safely with the same key.")


def short_id(prefix: str) -> str:
    """The random tail of an event id: unique enough for a client that did not choose an id itself."""
    return f"{prefix}-{new_event_id()[-12:]}"


def now() -> str:
    return format_time(utc_now())


async def run_command(
    runtime: ServiceRuntime,
    principal: Principal,
    idempotency_key: str | None,
    request: Any,
    decide: Decide,
) -> JSONResponse:
    """The request's fingerprint makes a reused Idempotency-Key with a different body a refusal, not a replay."""
    return await execute(
        runtime,
        decide,
        principal=principal.actor,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint(request),
    )


async def count_rows(conn: AsyncConnection, table: sa.Table, where: sa.ColumnElement[bool]) -> int:
    """A page's total is counted with the same filter as its rows, so `next_offset` never points past the end."""
    return int((await conn.execute(sa.select(sa.func.count()).select_from(table).where(where))).scalar() or 0)


async def paged_rows(
    conn: AsyncConnection,
    table: sa.Table,
    where: sa.ColumnElement[bool],
    order_by: Sequence[sa.ColumnElement[Any]],
    page: PageParams,
) -> tuple[Sequence[sa.RowMapping], int]:
    """One page of a table's rows and the total they are a page of; a stable order keeps pages from overlapping."""
    total = await count_rows(conn, table, where)
    query = sa.select(table).where(where).order_by(*order_by).limit(page.limit).offset(page.offset)
    return (await conn.execute(query)).mappings().all(), total
