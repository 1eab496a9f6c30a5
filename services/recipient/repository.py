"""Reads and writes of the recipient service's own tables, kept apart so the routes stay thin.

Every write here runs inside the command's transaction (`execute`), beside the events it reflects.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.recipient import domain
from services.recipient.schemas import NeedDetail, NeedOut, NeedReceiptOut, NeedStatus, RecipientOut
from services.recipient.tables import need_receipts, needs, recipients
from shared.domain.errors import Conflict, NotFound, RuleViolation
from shared.events import reference_events as ref
from shared.events.envelope import format_time
from shared.store.event_store import EventStore

# --- recipients ------------------------------------------------------------------------------------------


async def find_recipient(conn: AsyncConnection, recipient_id: str) -> RecipientOut | None:
    row = (await conn.execute(sa.select(recipients).where(recipients.c.recipient_id == recipient_id))).mappings()
    found = row.first()
    return RecipientOut(**found) if found else None


async def require_recipient(conn: AsyncConnection, recipient_id: str) -> RecipientOut:
    recipient = await find_recipient(conn, recipient_id)
    if recipient is None:
        raise NotFound(f"recipient {recipient_id} is not registered; list recipients with GET /recipients")
    return recipient


async def require_registered_recipient(conn: AsyncConnection, recipient_id: str) -> RecipientOut:
    """For commands naming a recipient in their body: an unknown one is bad input (422), not a missing page."""
    recipient = await find_recipient(conn, recipient_id)
    if recipient is None:
        raise RuleViolation(f"recipient {recipient_id} is not registered; an admin registers it with POST /recipients")
    return recipient


async def require_new_recipient(conn: AsyncConnection, store: EventStore, recipient_id: str, site_id: str) -> None:
    if recipient_id == site_id:
        raise RuleViolation(
            f"site_id must differ from recipient_id ({site_id}); name the facility, e.g. {site_id}-site"
        )
    if await find_recipient(conn, recipient_id):
        raise Conflict(f"recipient {recipient_id} is already registered; choose another recipient_id")
    owner = (await conn.execute(sa.select(recipients.c.recipient_id).where(recipients.c.site_id == site_id))).first()
    if owner:
        raise Conflict(f"site {site_id} is already the facility of recipient {owner.recipient_id}; choose another")
    await require_unused_stream(conn, store, recipient_id, "recipient_id")
    await require_unused_stream(conn, store, site_id, "site_id")


async def require_unused_stream(conn: AsyncConnection, store: EventStore, stream_id: str, field: str) -> None:
    """Recipients, sites, needs and batches share one event store; a new one must not take a used stream id."""
    if await store.current_version(conn, stream_id):
        raise Conflict(f"{field} {stream_id} is already used by another record in this service; choose another")


async def insert_recipient(conn: AsyncConnection, payload: ref.RecipientRegistered, now: str) -> RecipientOut:
    row = {**payload.model_dump(mode="json"), "registered_at": now}
    await conn.execute(recipients.insert().values(**row))
    return RecipientOut(**row)


def recipient_filters(
    kind: ref.RecipientKind | None, frontline: bool | None, country: str | None
) -> sa.ColumnElement[bool]:
    conditions: list[sa.ColumnElement[bool]] = []
    if kind is not None:
        conditions.append(recipients.c.kind == kind.value)
    if frontline is not None:
        conditions.append(recipients.c.frontline == frontline)
    if country is not None:
        conditions.append(recipients.c.country == country.upper())
    return sa.and_(sa.true(), *conditions)


# --- needs -----------------------------------------------------------------------------------------------


def need_out(row: sa.RowMapping | dict[str, Any]) -> NeedOut:
    quantity, received = int(row["quantity"]), int(row["received"])
    return NeedOut(
        need_id=row["need_id"],
        recipient_id=row["recipient_id"],
        item=row["item"],
        quantity=quantity,
        received=received,
        remaining=max(quantity - received, 0),
        priority=ref.Priority(row["priority"]),
        deadline=row["deadline"],
        status=NeedStatus(row["status"]),
        registered_at=row["registered_at"],
        fulfilled_at=row["fulfilled_at"],
    )


async def find_need(conn: AsyncConnection, need_id: str) -> NeedOut | None:
    row = (await conn.execute(sa.select(needs).where(needs.c.need_id == need_id))).mappings().first()
    return need_out(row) if row else None


async def need_detail(conn: AsyncConnection, need_id: str) -> NeedDetail:
    need = await find_need(conn, need_id)
    if need is None:
        raise NotFound(f"need {need_id} is not registered; list needs with GET /needs")
    query = sa.select(need_receipts).where(need_receipts.c.need_id == need_id).order_by(need_receipts.c.confirmed_at)
    receipts = [NeedReceiptOut(**row) for row in (await conn.execute(query)).mappings()]
    return NeedDetail(**need.model_dump(), receipts=receipts)


async def insert_need(conn: AsyncConnection, payload: ref.NeedRegistered, now: str) -> NeedOut:
    row = {
        "need_id": payload.need_id,
        "recipient_id": payload.recipient_id,
        "item": payload.item,
        "quantity": payload.quantity,
        "received": 0,
        "priority": payload.priority.value,
        "priority_rank": domain.priority_rank(payload.priority),
        "deadline": format_time(payload.deadline) if payload.deadline else None,
        "status": NeedStatus.OPEN.value,
        "registered_at": now,
        "fulfilled_at": None,
    }
    await conn.execute(needs.insert().values(**row))
    return need_out(row)


def need_filters(
    recipient_id: str | None, item: str | None, status: NeedStatus | None, priority: ref.Priority | None
) -> sa.ColumnElement[bool]:
    conditions: list[sa.ColumnElement[bool]] = []
    if recipient_id is not None:
        conditions.append(needs.c.recipient_id == recipient_id)
    if item is not None:
        conditions.append(needs.c.item == item)
    if status is not None:
        conditions.append(needs.c.status == status.value)
    if priority is not None:
        conditions.append(needs.c.priority == priority.value)
    return sa.and_(sa.true(), *conditions)


def needs_in_priority_order() -> list[sa.ColumnElement[Any]]:
    """Most urgent first: by priority, then the nearest deadline (needs without one last), then by id."""
    return [needs.c.priority_rank, needs.c.deadline.is_(None), needs.c.deadline, needs.c.need_id]


async def lock_need_tally(conn: AsyncConnection, need_id: str) -> domain.NeedTally | None:
    """Row-locked on PostgreSQL, so that two receipts for one need add up instead of overwriting each other
    (SQLite already serialises writers with BEGIN IMMEDIATE and ignores FOR UPDATE)."""
    query = sa.select(needs).where(needs.c.need_id == need_id).with_for_update()
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        return None
    return domain.NeedTally(
        row["need_id"], row["recipient_id"], row["item"], int(row["quantity"]), int(row["received"])
    )


async def record_receipt(
    conn: AsyncConnection, effect: domain.ReceiptEffect, batch_id: str, event_id: str, now: str
) -> None:
    tally = effect.tally
    changes: dict[str, Any] = {"received": tally.received}
    if tally.fulfilled:
        changes["status"] = NeedStatus.FULFILLED.value
    if effect.fulfilled_now:
        changes["fulfilled_at"] = now
    await conn.execute(needs.update().where(needs.c.need_id == tally.need_id).values(**changes))
    await conn.execute(
        need_receipts.insert().values(
            batch_id=batch_id,
            need_id=tally.need_id,
            quantity_received=effect.counted,
            event_id=event_id,
            confirmed_at=now,
        )
    )
