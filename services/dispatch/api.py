"""HTTP routes of the dispatch service: batches ready to ship, planning shipments, and moving them leg by leg."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from services.dispatch import domain, movement, repository, views
from services.dispatch.schemas import (
    ErrorOut,
    HandoverIn,
    MovedBatch,
    MovementOut,
    ReadyBatch,
    ShipmentIn,
    ShipmentOut,
    ShipmentSummary,
    WriteOffIn,
)
from shared.domain.batch_state import BatchState
from shared.domain.errors import Conflict, NotFound
from shared.events.batch_events import WriteOffReason
from shared.events.envelope import Envelope
from shared.events.reference_events import ShipmentPlanned
from shared.projections.batch_view import fold_stored
from shared.store.event_store import StreamAppend
from shared.web.auth import Principal, Role, current_principal, ensure_site_access, forbidden, require_roles
from shared.web.commands import Outcome
from shared.web.pagination import Page, PageParams, page_params
from shared.web.route_helpers import IDEMPOTENCY, now, run_command, short_id
from shared.web.runtime import ServiceRuntime, get_runtime

router = APIRouter(tags=["dispatch"])
WRITERS = require_roles(Role.dispatcher, Role.admin)
# A work queue that names every donor's batches: donors read their own at the pledge service instead.
STAFF_READERS = require_roles(Role.operator, Role.dispatcher, Role.recipient_staff, Role.auditor)

WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorOut, "description": "The caller's role or sites do not allow this."},
    404: {"model": ErrorOut, "description": "No such shipment."},
    409: {"model": ErrorOut, "description": "Out of order, or a batch already on an open shipment."},
    422: {"model": ErrorOut, "description": "The request breaks a rule; the message says which and how to fix it."},
}


# --- reads -------------------------------------------------------------------------------------------------


@router.get(
    "/ready-to-ship",
    response_model=Page[ReadyBatch],
    summary="Picked batches waiting to be shipped, by site and recipient.",
)
async def ready_to_ship(
    site_id: str | None = Query(None, description="Only batches waiting at this warehouse."),
    recipient_id: str | None = Query(None, description="Only batches picked for this recipient."),
    include_planned: bool = Query(False, description="Also list batches already planned on an open shipment."),
    page: PageParams = Depends(page_params),
    _: Principal = Depends(STAFF_READERS),
    runtime: ServiceRuntime = Depends(get_runtime),
) -> Page[ReadyBatch]:
    async with runtime.database.read() as conn:
        return await views.ready_to_ship(conn, site_id, recipient_id, include_planned, page)


@router.get("/shipments", response_model=Page[ShipmentSummary], summary="Shipments, newest first, filtered and paged.")
async def list_shipments(
    status: domain.ShipmentStatus | None = Query(None, description="Only shipments in this state."),
    recipient_id: str | None = Query(None),
    site_id: str | None = Query(None, description="Only shipments whose route starts, stops or ends here."),
    batch_id: str | None = Query(None, description="Only shipments carrying this batch."),
    page: PageParams = Depends(page_params),
    _: Principal = Depends(current_principal),
    runtime: ServiceRuntime = Depends(get_runtime),
) -> Page[ShipmentSummary]:
    async with runtime.database.read() as conn:
        return await views.list_shipments(conn, status.value if status else None, recipient_id, site_id, batch_id, page)


@router.get(
    "/shipments/{shipment_id}",
    response_model=ShipmentOut,
    responses={404: WRITE_ERRORS[404]},
    summary="A shipment: its legs, where it is, who carries it, and each batch's current state.",
)
async def get_shipment(
    shipment_id: str, _: Principal = Depends(current_principal), runtime: ServiceRuntime = Depends(get_runtime)
) -> ShipmentOut:
    async with runtime.database.read() as conn:
        return await views.shipment_detail(conn, shipment_id)


# --- planning ----------------------------------------------------------------------------------------------


@router.post(
    "/shipments",
    status_code=201,
    response_model=ShipmentOut,
    responses=WRITE_ERRORS,
    summary="Plan a shipment of picked batches along legs warehouse -> relay hub(s) -> recipient.",
)
async def plan_shipment(
    body: ShipmentIn,
    principal: Principal = Depends(WRITERS),
    idempotency_key: str | None = IDEMPOTENCY,
    runtime: ServiceRuntime = Depends(get_runtime),
) -> JSONResponse:
    ensure_site_access(principal, body.legs[0].from_site_id)
    shipment_id = body.shipment_id or short_id("shp")
    legs = domain.number_legs([(leg.from_site_id, leg.to_site_id, leg.carrier, leg.vehicle) for leg in body.legs])

    async def decide(conn: AsyncConnection) -> Outcome:
        await _require_new_shipment_id(runtime, conn, shipment_id)
        recipient_site = await repository.recipient_site(conn, body.recipient_id)
        sites = await repository.site_kinds(conn, [s for leg in legs for s in (leg.from_site_id, leg.to_site_id)])
        domain.check_route(legs, sites, recipient_site)
        states = await _batch_states(runtime, conn, body.batch_ids)
        domain.check_batches(
            body.batch_ids, {b: s for b, (s, _v) in states.items()}, body.recipient_id, legs[0].from_site_id
        )
        await _require_not_on_open_shipment(conn, body.batch_ids)
        planned = ShipmentPlanned(
            shipment_id=shipment_id, recipient_id=body.recipient_id, batch_ids=body.batch_ids, legs=list(legs)
        )
        event = runtime.new_event(planned, shipment_id, principal.actor)
        await repository.insert_shipment(conn, planned, event.id, principal.actor, now())
        detail = await views.shipment_detail(conn, shipment_id)
        return Outcome(body=detail, status_code=201, appends=[StreamAppend(shipment_id, 0, [event])])

    return await run_command(runtime, principal, idempotency_key, body.model_dump(mode="json"), decide)


async def _require_new_shipment_id(runtime: ServiceRuntime, conn: AsyncConnection, shipment_id: str) -> None:
    """The shipment's stream shares the event store with batch streams, so its id must be new to both."""
    if await repository.shipment_exists(conn, shipment_id) or await runtime.store.current_version(conn, shipment_id):
        raise Conflict(f"shipment id {shipment_id} is already taken; choose another shipment_id or leave it out")


async def _batch_states(
    runtime: ServiceRuntime, conn: AsyncConnection, batch_ids: list[str]
) -> dict[str, tuple[BatchState | None, int]]:
    """Each batch as the fold rebuilds it from dispatch's copy of its stream, with the stream's version."""
    streams = await runtime.store.load_many(conn, list(dict.fromkeys(batch_ids)))
    return {
        batch_id: (fold_stored(stored, batch_id), stored[-1].version if stored else 0)
        for batch_id, stored in streams.items()
    }


async def _require_not_on_open_shipment(conn: AsyncConnection, batch_ids: list[str]) -> None:
    taken = await repository.open_shipments_of(conn, batch_ids)
    if taken:
        listed = "; ".join(f"batch {b} is on shipment {s} ({status})" for b, (s, status) in sorted(taken.items()))
        raise Conflict(f"{listed}. A batch travels on one open shipment at a time; leave these batches out")


# --- movement ----------------------------------------------------------------------------------------------


@router.post(
    "/shipments/{shipment_id}/dispatch",
    response_model=MovementOut,
    responses=WRITE_ERRORS,
    summary="The shipment leaves its warehouse on leg 1: every batch is in transit (batch.dispatched).",
)
async def dispatch_shipment(
    shipment_id: str,
    principal: Principal = Depends(WRITERS),
    idempotency_key: str | None = IDEMPOTENCY,
    runtime: ServiceRuntime = Depends(get_runtime),
) -> JSONResponse:
    return await _move(runtime, principal, shipment_id, movement.Dispatch(), idempotency_key, {})


@router.post(
    "/shipments/{shipment_id}/arrive",
    response_model=MovementOut,
    responses=WRITE_ERRORS,
    summary="The shipment arrives at the relay hub its current leg ends at (batch.arrived).",
)
async def arrive_at_hub(
    shipment_id: str,
    principal: Principal = Depends(WRITERS),
    idempotency_key: str | None = IDEMPOTENCY,
    runtime: ServiceRuntime = Depends(get_runtime),
) -> JSONResponse:
    return await _move(runtime, principal, shipment_id, movement.Arrive(), idempotency_key, {})


@router.post(
    "/shipments/{shipment_id}/handover",
    response_model=MovementOut,
    responses=WRITE_ERRORS,
    summary="At a relay hub, the current carrier hands the goods over to another (batch.handed-over).",
)
async def hand_over(
    shipment_id: str,
    body: HandoverIn,
    principal: Principal = Depends(WRITERS),
    idempotency_key: str | None = IDEMPOTENCY,
    runtime: ServiceRuntime = Depends(get_runtime),
) -> JSONResponse:
    command = movement.Handover(to_carrier=body.to_carrier, vehicle=body.vehicle)
    return await _move(runtime, principal, shipment_id, command, idempotency_key, body.model_dump(mode="json"))


@router.post(
    "/shipments/{shipment_id}/depart",
    response_model=MovementOut,
    responses=WRITE_ERRORS,
    summary="The shipment leaves the hub on its next leg, with the carrier that holds it (batch.departed).",
)
async def depart_hub(
    shipment_id: str,
    principal: Principal = Depends(WRITERS),
    idempotency_key: str | None = IDEMPOTENCY,
    runtime: ServiceRuntime = Depends(get_runtime),
) -> JSONResponse:
    return await _move(runtime, principal, shipment_id, movement.Depart(), idempotency_key, {})


@router.post(
    "/shipments/{shipment_id}/deliver",
    response_model=MovementOut,
    responses=WRITE_ERRORS,
    summary="The shipment reaches the recipient's facility: what is still in transit is delivered.",
)
async def deliver(
    shipment_id: str,
    principal: Principal = Depends(WRITERS),
    idempotency_key: str | None = IDEMPOTENCY,
    runtime: ServiceRuntime = Depends(get_runtime),
) -> JSONResponse:
    return await _move(runtime, principal, shipment_id, movement.Deliver(), idempotency_key, {})


@router.post(
    "/shipments/{shipment_id}/write-off",
    response_model=MovementOut,
    responses=WRITE_ERRORS,
    summary="Write off part or all of one batch lost or damaged in transit (batch.written-off, stage transit).",
)
async def write_off_in_transit(
    shipment_id: str,
    body: WriteOffIn,
    principal: Principal = Depends(WRITERS),
    idempotency_key: str | None = IDEMPOTENCY,
    runtime: ServiceRuntime = Depends(get_runtime),
) -> JSONResponse:
    command = movement.WriteOff(
        batch_id=body.batch_id, quantity=body.quantity, reason=WriteOffReason(body.reason.value), note=body.note
    )
    return await _move(runtime, principal, shipment_id, command, idempotency_key, body.model_dump(mode="json"))


async def _move(
    runtime: ServiceRuntime,
    principal: Principal,
    shipment_id: str,
    command: movement.Command,
    idempotency_key: str | None,
    request: dict[str, Any],
) -> JSONResponse:
    """One transaction: load the shipment and its batches, decide, append one event per batch, save progress."""

    async def decide(conn: AsyncConnection) -> Outcome:
        record = await repository.load_shipment(conn, shipment_id, for_update=True)
        loaded = await _shipment_batches(runtime, conn, record.batch_ids)
        states = {batch_id: state for batch_id, (state, _version) in loaded.items()}
        domain.require_allowed(record.progress, command.action, states)
        _ensure_any_site_access(principal, domain.acting_sites(record.progress, command.action), command.action)
        moved = movement.move(record.progress, command, states)
        events = [
            runtime.new_event(payload, batch_id, principal.actor, record.planned_event_id)
            for batch_id, payload in moved.events
        ]
        appends = [StreamAppend(e.subject, loaded[e.subject][1], [e]) for e in events]
        await repository.save_progress(conn, record.progress, moved.progress, now())
        return Outcome(body=_movement_out(moved.progress, command.action, events), appends=appends)

    return await run_command(
        runtime, principal, idempotency_key, {"shipment_id": shipment_id, "action": command.action, **request}, decide
    )


async def _shipment_batches(
    runtime: ServiceRuntime, conn: AsyncConnection, batch_ids: tuple[str, ...]
) -> dict[str, tuple[BatchState, int]]:
    found: dict[str, tuple[BatchState, int]] = {}
    for batch_id, (state, version) in (await _batch_states(runtime, conn, list(batch_ids))).items():
        if state is None:
            raise NotFound(f"batch {batch_id} of this shipment has no events here; the batch view is being rebuilt")
        found[batch_id] = (state, version)
    return found


def _ensure_any_site_access(principal: Principal, sites: tuple[str, ...], action: domain.Action) -> None:
    """A dispatcher acts where the goods are (or are about to arrive); admins act anywhere."""
    if any(principal.may_access_site(site) for site in sites):
        return
    own = ", ".join(sorted(principal.sites)) or "none"
    raise forbidden(
        f"{principal.actor} may not {action.value} this shipment: that is done at {' or '.join(sites)}, and this "
        f"token's sites are {own}; mint a token with `--site {sites[0]}` if this person works there"
    )


def _movement_out(progress: domain.Progress, action: domain.Action, events: list[Envelope]) -> MovementOut:
    return MovementOut(
        shipment_id=progress.shipment_id,
        action=action.value,
        status=progress.status.value,
        current_leg_no=progress.current_leg_no,
        carrier=progress.carrier,
        vehicle=progress.vehicle,
        allowed_next=[a.value for a in domain.allowed_actions(progress)],
        events=[MovedBatch(batch_id=e.subject, event_id=e.id, event_type=e.type) for e in events],
    )
