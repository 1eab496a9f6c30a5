"""The read side of dispatch: batches ready to ship, and shipments with their legs and their batches' states.

Reads never fold events: they read the batch view and the shipment tables, which every command and every
consumed event keep current in the same transaction as the events themselves.
"""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.dispatch import domain, repository
from services.dispatch.schemas import LegOut, ReadyBatch, ShipmentBatchOut, ShipmentOut, ShipmentSummary
from services.dispatch.tables import shipment_batches, shipment_legs, shipments
from shared.domain.batch_state import BatchStatus
from shared.projections.batch_view import batch_view
from shared.web.pagination import Page, PageParams


def _open_plans() -> sa.Subquery:
    return (
        sa.select(shipment_batches.c.batch_id, shipment_batches.c.shipment_id)
        .join(shipments, shipments.c.shipment_id == shipment_batches.c.shipment_id)
        .where(shipments.c.status.in_([status.value for status in domain.OPEN_STATUSES]))
        .subquery("open_plans")
    )


async def ready_to_ship(
    conn: AsyncConnection, site_id: str | None, recipient_id: str | None, include_planned: bool, page: PageParams
) -> Page[ReadyBatch]:
    plans = _open_plans()
    conditions = [batch_view.c.status == BatchStatus.PICKED.value]
    if site_id is not None:
        conditions.append(batch_view.c.site_id == site_id)
    if recipient_id is not None:
        conditions.append(batch_view.c.recipient_id == recipient_id)
    if not include_planned:
        conditions.append(plans.c.shipment_id.is_(None))
    joined = batch_view.outerjoin(plans, plans.c.batch_id == batch_view.c.batch_id)
    where = sa.and_(*conditions)
    total = (await conn.execute(sa.select(sa.func.count()).select_from(joined).where(where))).scalar()
    query = (
        sa.select(batch_view, plans.c.shipment_id.label("planned_shipment_id"))
        .select_from(joined)
        .where(where)
        .order_by(batch_view.c.batch_id)
        .limit(page.limit)
        .offset(page.offset)
    )
    rows = (await conn.execute(query)).mappings().all()
    return Page.of([_ready_batch(row) for row in rows], int(total or 0), page)


def _ready_batch(row: sa.RowMapping) -> ReadyBatch:
    state: dict[str, Any] = orjson.loads(row["state"])
    allocation = state.get("picked_allocation") or {}
    return ReadyBatch(
        batch_id=row["batch_id"],
        item=row["item"],
        unit=state["unit"],
        standard=state.get("standard"),
        quantity=row["on_hand"],
        site_id=row["site_id"],
        recipient_id=row["recipient_id"],
        allocation_id=allocation.get("allocation_id"),
        need_id=allocation.get("need_id"),
        pledge_id=row["pledge_id"],
        donor_id=row["donor_id"],
        lot=row["lot"],
        expiry=row["expiry"],
        planned_shipment_id=row["planned_shipment_id"],
    )


async def list_shipments(
    conn: AsyncConnection,
    status: str | None,
    recipient_id: str | None,
    site_id: str | None,
    batch_id: str | None,
    page: PageParams,
) -> Page[ShipmentSummary]:
    conditions: list[sa.ColumnElement[bool]] = [sa.true()]
    if status is not None:
        conditions.append(shipments.c.status == status)
    if recipient_id is not None:
        conditions.append(shipments.c.recipient_id == recipient_id)
    if site_id is not None:
        on_route = (shipment_legs.c.from_site_id == site_id) | (shipment_legs.c.to_site_id == site_id)
        conditions.append(shipments.c.shipment_id.in_(sa.select(shipment_legs.c.shipment_id).where(on_route)))
    if batch_id is not None:
        carrying = sa.select(shipment_batches.c.shipment_id).where(shipment_batches.c.batch_id == batch_id)
        conditions.append(shipments.c.shipment_id.in_(carrying))
    where = sa.and_(*conditions)
    total = (await conn.execute(sa.select(sa.func.count()).select_from(shipments).where(where))).scalar()
    query = (
        sa.select(shipments)
        .where(where)
        .order_by(shipments.c.planned_at.desc(), shipments.c.shipment_id)
        .limit(page.limit)
        .offset(page.offset)
    )
    rows = (await conn.execute(query)).mappings().all()
    batch_ids = await repository.shipment_batch_ids(conn, [row["shipment_id"] for row in rows])
    items = [_summary(row, batch_ids[row["shipment_id"]]) for row in rows]
    return Page.of(items, int(total or 0), page)


def _summary(row: sa.RowMapping, batch_ids: list[str]) -> ShipmentSummary:
    fields = {name: row[name] for name in ShipmentSummary.model_fields if name != "batch_ids"}
    return ShipmentSummary(**fields, batch_ids=batch_ids)


async def shipment_detail(conn: AsyncConnection, shipment_id: str) -> ShipmentOut:
    record = await repository.load_shipment(conn, shipment_id)
    row = (await conn.execute(sa.select(shipments).where(shipments.c.shipment_id == shipment_id))).mappings().one()
    summary = _summary(row, list(record.batch_ids))
    return ShipmentOut(
        **summary.model_dump(),
        current_site_id=domain.current_site(record.progress),
        allowed_next=[action.value for action in domain.allowed_actions(record.progress)],
        legs=await _legs(conn, shipment_id),
        batches=await _batches(conn, list(record.batch_ids)),
    )


async def _legs(conn: AsyncConnection, shipment_id: str) -> list[LegOut]:
    query = sa.select(shipment_legs).where(shipment_legs.c.shipment_id == shipment_id).order_by(shipment_legs.c.leg_no)
    rows = (await conn.execute(query)).mappings().all()
    return [LegOut(**{name: row[name] for name in LegOut.model_fields}) for row in rows]


async def _batches(conn: AsyncConnection, batch_ids: list[str]) -> list[ShipmentBatchOut]:
    query = sa.select(batch_view).where(batch_view.c.batch_id.in_(batch_ids))
    found = {row["batch_id"]: row for row in (await conn.execute(query)).mappings().all()}
    return [_batch_out(batch_id, found.get(batch_id)) for batch_id in batch_ids]


def _batch_out(batch_id: str, row: sa.RowMapping | None) -> ShipmentBatchOut:
    if row is None:
        return ShipmentBatchOut(
            batch_id=batch_id,
            status="unknown",
            item=None,
            site_id=None,
            dispatched=0,
            in_transit=0,
            delivered=0,
            written_off_transit=0,
        )
    state: dict[str, Any] = orjson.loads(row["state"])
    return ShipmentBatchOut(
        batch_id=batch_id,
        status=row["status"],
        item=row["item"],
        site_id=row["site_id"],
        dispatched=state["dispatched"],
        in_transit=state["in_transit"],
        delivered=state["delivered"],
        written_off_transit=state["written_off_transit"],
    )
