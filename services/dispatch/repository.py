"""Reads and writes of the dispatch tables inside a command's transaction.

Kept apart from the routes so that a route reads as: load, decide (pure), save; and so that the shipment rows
always change in the same transaction as the events that move the shipment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.dispatch.domain import OPEN_STATUSES, LegStatus, Progress, ShipmentStatus
from services.dispatch.movement import LegChange, leg_change
from services.dispatch.tables import recipients, shipment_batches, shipment_legs, shipments, sites
from shared.domain.errors import Conflict, NotFound, RuleViolation
from shared.events.reference_events import ShipmentLeg, ShipmentPlanned, SiteKind


@dataclass(frozen=True, slots=True)
class ShipmentRecord:
    progress: Progress
    batch_ids: tuple[str, ...]
    planned_event_id: str


async def site_kinds(conn: AsyncConnection, site_ids: Sequence[str]) -> dict[str, SiteKind]:
    query = sa.select(sites.c.site_id, sites.c.kind).where(sites.c.site_id.in_(list(site_ids)))
    return {row.site_id: SiteKind(row.kind) for row in await conn.execute(query)}


async def recipient_site(conn: AsyncConnection, recipient_id: str) -> str:
    """The recipient's facility, where every route to it must end."""
    query = sa.select(recipients.c.site_id).where(recipients.c.recipient_id == recipient_id)
    row = (await conn.execute(query)).first()
    if row is None:
        raise RuleViolation(
            f"recipient {recipient_id} is not known to dispatch; check the id, or wait until its "
            "recipient.registered event has arrived"
        )
    return str(row.site_id)


async def shipment_exists(conn: AsyncConnection, shipment_id: str) -> bool:
    query = sa.select(shipments.c.shipment_id).where(shipments.c.shipment_id == shipment_id)
    return (await conn.execute(query)).first() is not None


async def open_shipments_of(conn: AsyncConnection, batch_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """batch id -> (shipment id, status) for every listed batch that is already on an open shipment."""
    query = (
        sa.select(shipment_batches.c.batch_id, shipments.c.shipment_id, shipments.c.status)
        .join(shipments, shipments.c.shipment_id == shipment_batches.c.shipment_id)
        .where(shipment_batches.c.batch_id.in_(list(batch_ids)))
        .where(shipments.c.status.in_([status.value for status in OPEN_STATUSES]))
    )
    return {row.batch_id: (row.shipment_id, row.status) for row in await conn.execute(query)}


async def insert_shipment(
    conn: AsyncConnection, planned: ShipmentPlanned, planned_event_id: str, actor: str, now: str
) -> None:
    await conn.execute(
        shipments.insert().values(
            shipment_id=planned.shipment_id,
            recipient_id=planned.recipient_id,
            origin_site_id=planned.legs[0].from_site_id,
            destination_site_id=planned.legs[-1].to_site_id,
            status=ShipmentStatus.PLANNED.value,
            current_leg_no=1,
            leg_count=len(planned.legs),
            carrier=None,
            vehicle=None,
            handed_over=False,
            planned_event_id=planned_event_id,
            planned_by=actor,
            planned_at=now,
            updated_at=now,
        )
    )
    await conn.execute(shipment_legs.insert(), [_leg_row(planned.shipment_id, leg) for leg in planned.legs])
    await _insert_batches(conn, planned)


async def _insert_batches(conn: AsyncConnection, planned: ShipmentPlanned) -> None:
    rows = [
        {"shipment_id": planned.shipment_id, "batch_id": batch_id, "position": position}
        for position, batch_id in enumerate(planned.batch_ids)
    ]
    try:
        await conn.execute(shipment_batches.insert(), rows)
    except IntegrityError as exc:
        raise Conflict(
            f"another shipment planned at the same moment took one of {', '.join(planned.batch_ids)}; "
            "list the open shipments with GET /shipments and plan the remaining batches again"
        ) from exc


def _leg_row(shipment_id: str, leg: ShipmentLeg) -> dict[str, object]:
    return {
        "shipment_id": shipment_id,
        "leg_no": leg.leg_no,
        "from_site_id": leg.from_site_id,
        "to_site_id": leg.to_site_id,
        "carrier": leg.carrier,
        "vehicle": leg.vehicle,
        "status": LegStatus.PENDING.value,
    }


async def load_shipment(conn: AsyncConnection, shipment_id: str, *, for_update: bool = False) -> ShipmentRecord:
    """`for_update` serialises commands on one shipment, so two of them never decide on the same old progress.

    SQLite needs no row lock: its write transactions start with BEGIN IMMEDIATE and so run one at a time.
    """
    query = sa.select(shipments).where(shipments.c.shipment_id == shipment_id)
    if for_update and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(f"shipment {shipment_id} does not exist; list shipments with GET /shipments")
    legs = await load_legs(conn, shipment_id)
    progress = Progress(
        shipment_id=row.shipment_id,
        recipient_id=row.recipient_id,
        status=ShipmentStatus(row.status),
        legs=tuple(legs),
        current_leg_no=row.current_leg_no,
        carrier=row.carrier,
        vehicle=row.vehicle,
        handed_over=bool(row.handed_over),
    )
    batch_ids = await shipment_batch_ids(conn, [shipment_id])
    return ShipmentRecord(progress, tuple(batch_ids.get(shipment_id, [])), row.planned_event_id)


async def load_legs(conn: AsyncConnection, shipment_id: str) -> list[ShipmentLeg]:
    query = sa.select(shipment_legs).where(shipment_legs.c.shipment_id == shipment_id).order_by(shipment_legs.c.leg_no)
    return [
        ShipmentLeg(
            leg_no=row.leg_no,
            from_site_id=row.from_site_id,
            to_site_id=row.to_site_id,
            carrier=row.carrier,
            vehicle=row.vehicle,
        )
        for row in await conn.execute(query)
    ]


async def shipment_batch_ids(conn: AsyncConnection, shipment_ids: Sequence[str]) -> dict[str, list[str]]:
    query = (
        sa.select(shipment_batches.c.shipment_id, shipment_batches.c.batch_id)
        .where(shipment_batches.c.shipment_id.in_(list(shipment_ids)))
        .order_by(shipment_batches.c.shipment_id, shipment_batches.c.position)
    )
    found: dict[str, list[str]] = {shipment_id: [] for shipment_id in shipment_ids}
    for row in await conn.execute(query):
        found[row.shipment_id].append(row.batch_id)
    return found


async def save_progress(conn: AsyncConnection, before: Progress, after: Progress, now: str) -> None:
    await conn.execute(
        shipments.update()
        .where(shipments.c.shipment_id == after.shipment_id)
        .values(
            status=after.status.value,
            current_leg_no=after.current_leg_no,
            carrier=after.carrier,
            vehicle=after.vehicle,
            handed_over=after.handed_over,
            updated_at=now,
        )
    )
    change = leg_change(before, after)
    if change is not None:
        await _record_leg_change(conn, after.shipment_id, change, now)


async def _record_leg_change(conn: AsyncConnection, shipment_id: str, change: LegChange, now: str) -> None:
    values: dict[str, object] = {"status": change.status.value}
    if change.departed:
        values.update(actual_carrier=change.carrier, actual_vehicle=change.vehicle, departed_at=now)
    else:
        values.update(arrived_at=now)
    where = (shipment_legs.c.shipment_id == shipment_id) & (shipment_legs.c.leg_no == change.leg_no)
    await conn.execute(shipment_legs.update().where(where).values(**values))
