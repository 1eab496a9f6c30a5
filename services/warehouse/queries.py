"""Read-side queries over the warehouse's own tables and its batch view, shared by routes and commands.

A command runs these inside its write transaction, so what it decides on is what it commits against.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.warehouse.allocation import OpenNeed
from services.warehouse.projections import NEED_OPEN
from services.warehouse.schemas import NeedOut
from services.warehouse.tables import allocations, needs, recipients
from shared.domain.batch_state import BatchState
from shared.domain.errors import Conflict, NotFound, RuleViolation
from shared.events.envelope import parse_time
from shared.projections.batch_view import batch_view, fold_stored
from shared.store.event_store import EventStore

# An allocation whose goods were written off no longer covers the need it was made for.
LOST_ALLOCATION = "written_off"


# --- needs ---------------------------------------------------------------------------------------------------


def _allocated_per_need() -> sa.Subquery:
    live = allocations.c.status != LOST_ALLOCATION
    return (
        sa.select(allocations.c.need_id, sa.func.sum(allocations.c.quantity).label("allocated"))
        .where(live)
        .group_by(allocations.c.need_id)
        .subquery()
    )


def needs_query(
    *, item: str | None = None, recipient_id: str | None = None, status: str | None = None, unmet: bool = False
) -> sa.Select[Any]:
    """Needs with their recipient and what is already allocated, in the order allocation serves them."""
    allocated = _allocated_per_need()
    allocated_amount = sa.func.coalesce(allocated.c.allocated, 0)
    query = (
        sa.select(
            needs,
            recipients.c.name.label("recipient_name"),
            recipients.c.kind.label("recipient_kind"),
            sa.func.coalesce(recipients.c.frontline, sa.false()).label("frontline"),
            allocated_amount.label("allocated"),
        )
        .select_from(needs)
        .outerjoin(recipients, recipients.c.recipient_id == needs.c.recipient_id)
        .outerjoin(allocated, allocated.c.need_id == needs.c.need_id)
    )
    conditions = [
        needs.c.item == item if item else None,
        needs.c.recipient_id == recipient_id if recipient_id else None,
        needs.c.status == status if status else None,
        needs.c.quantity > allocated_amount if unmet else None,
    ]
    query = query.where(sa.and_(sa.true(), *(c for c in conditions if c is not None)))
    return query.order_by(
        sa.case((recipients.c.frontline.is_(True), 0), else_=1),
        sa.case((needs.c.deadline.is_(None), 1), else_=0),
        needs.c.deadline,
        needs.c.registered_at,
        needs.c.need_id,
    )


def need_out(row: sa.RowMapping) -> NeedOut:
    allocated = int(row["allocated"])
    return NeedOut(
        need_id=row["need_id"],
        recipient_id=row["recipient_id"],
        recipient_name=row["recipient_name"],
        recipient_kind=row["recipient_kind"],
        frontline=bool(row["frontline"]),
        item=row["item"],
        priority=row["priority"],
        deadline=row["deadline"],
        status=row["status"],
        quantity=int(row["quantity"]),
        allocated=allocated,
        remaining=max(0, int(row["quantity"]) - allocated),
        registered_at=row["registered_at"],
    )


def open_need(need: NeedOut) -> OpenNeed:
    deadline: datetime | None = parse_time(need.deadline) if need.deadline else None
    return OpenNeed(
        need_id=need.need_id,
        recipient_id=need.recipient_id,
        item=need.item,
        remaining=need.remaining,
        frontline=need.frontline,
        deadline=deadline,
        registered_at=need.registered_at,
    )


async def open_needs(conn: AsyncConnection, items: Sequence[str]) -> list[OpenNeed]:
    """Needs not yet fulfilled that still lack something, for the given items.

    Read inside the command's transaction, which the event store serialises with every other writer of this
    service (`EventStore.lock_writes`), so two allocations can never both fill what one need lacks.
    """
    query = needs_query(status=NEED_OPEN, unmet=True).where(needs.c.item.in_(list(items)))
    return [open_need(need_out(row)) for row in (await conn.execute(query)).mappings()]


async def need_for_allocation(conn: AsyncConnection, need_id: str) -> OpenNeed:
    row = (await conn.execute(needs_query().where(needs.c.need_id == need_id))).mappings().first()
    if row is None:
        raise NotFound(
            f"need {need_id} is not known to the warehouse; needs arrive from the recipient service on the "
            "reference topic: check the id with GET /needs, or wait until it has arrived"
        )
    need = need_out(row)
    if need.status != NEED_OPEN:
        raise Conflict(f"need {need_id} is {need.status}; allocate to one of the open needs in GET /needs")
    return open_need(need)


async def require_recipient(conn: AsyncConnection, recipient_id: str) -> None:
    """A designation to a mistyped recipient would lock the batch to nobody; refuse it instead."""
    if (
        await conn.execute(sa.select(recipients.c.recipient_id).where(recipients.c.recipient_id == recipient_id))
    ).first():
        return
    raise RuleViolation(
        f"recipient {recipient_id} is not known to the warehouse; check the id (GET /needs lists known "
        "recipients' needs), or wait until its registration has arrived from the recipient service"
    )


# --- batches -------------------------------------------------------------------------------------------------


async def load_states(
    conn: AsyncConnection, store: EventStore, batch_ids: Sequence[str]
) -> tuple[list[BatchState], dict[str, int]]:
    """States folded from the local streams (the authority), with each stream's version for the append."""
    streams = await store.load_many(conn, batch_ids)
    states: list[BatchState] = []
    versions: dict[str, int] = {}
    for batch_id, stored in streams.items():
        state = fold_stored(stored, batch_id)
        if state is not None:
            states.append(state)
            versions[batch_id] = stored[-1].version
    return states, versions


async def batch_ids_at(
    conn: AsyncConnection, statuses: Sequence[str], site_ids: Sequence[str] | None, item: str | None
) -> list[str]:
    conditions: list[sa.ColumnElement[bool]] = [batch_view.c.status.in_(list(statuses))]
    if site_ids is not None:
        conditions.append(batch_view.c.site_id.in_(list(site_ids)))
    if item:
        conditions.append(batch_view.c.item == item)
    query = sa.select(batch_view.c.batch_id).where(*conditions).order_by(batch_view.c.batch_id)
    return [row.batch_id for row in await conn.execute(query)]
