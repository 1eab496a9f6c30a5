"""HTTP routes of the pledge service: donors, pledges and the donor's view of where their goods are."""

from __future__ import annotations

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from services.pledge import domain
from services.pledge.schemas import (
    AmendLineIn,
    CancelIn,
    DonorBatch,
    DonorIn,
    DonorOut,
    PledgeCreated,
    PledgeIn,
    PledgeLineOut,
    PledgeOut,
)
from services.pledge.tables import donors, pledges
from shared.domain.errors import Conflict, NotFound, RuleViolation
from shared.events import reference_events as ref
from shared.events.envelope import format_time, utc_now
from shared.projections.batch_view import batch_view
from shared.store.event_store import StreamAppend
from shared.web.auth import Principal, Role, ensure_donor_access, own_donor_filter, require_roles
from shared.web.commands import Outcome, load_batch
from shared.web.pagination import Page, PageParams, page_params
from shared.web.route_helpers import IDEMPOTENCY, count_rows, paged_rows, run_command, short_id
from shared.web.runtime import ServiceRuntime, get_runtime

router = APIRouter(tags=["pledges"])
WRITERS = require_roles(Role.donor, Role.admin)
READERS = require_roles(Role.donor, Role.admin, Role.auditor, Role.operator)


@router.post("/donors", status_code=201, response_model=DonorOut, summary="Register a donor.")
async def register_donor(
    body: DonorIn,
    principal: Principal = Depends(WRITERS),
    idempotency_key: str | None = IDEMPOTENCY,
    runtime: ServiceRuntime = Depends(get_runtime),
) -> JSONResponse:
    donor_id = body.donor_id or principal.donor_id or short_id("donor")
    ensure_donor_access(principal, donor_id)

    async def decide(conn: AsyncConnection) -> Outcome:
        if (await conn.execute(sa.select(donors.c.donor_id).where(donors.c.donor_id == donor_id))).first():
            raise Conflict(f"donor {donor_id} is already registered; choose another donor_id")
        payload = ref.DonorRegistered(donor_id=donor_id, name=body.name, kind=body.kind, country=body.country)
        now = format_time(utc_now())
        row = {
            "donor_id": donor_id,
            "name": body.name,
            "kind": body.kind,
            "country": body.country,
            "registered_at": now,
        }
        await conn.execute(donors.insert().values(**row))
        event = runtime.new_event(payload, donor_id, principal.actor)
        return Outcome(body=row, status_code=201, appends=[StreamAppend(donor_id, 0, [event])])

    return await run_command(runtime, principal, idempotency_key, body.model_dump(mode="json"), decide)


@router.get("/donors", response_model=Page[DonorOut], summary="Registered donors, paged.")
async def list_donors(
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(READERS),
    runtime: ServiceRuntime = Depends(get_runtime),
) -> Page[DonorOut]:
    own = own_donor_filter(principal, None)  # a donor sees only their own record
    where = donors.c.donor_id == own if own else sa.true()
    async with runtime.database.read() as conn:
        rows, total = await paged_rows(conn, donors, where, [donors.c.donor_id], page)
    return Page.of([DonorOut(**row) for row in rows], total, page)


@router.get("/donors/{donor_id}", response_model=DonorOut, summary="One donor.")
async def get_donor(
    donor_id: str, principal: Principal = Depends(READERS), runtime: ServiceRuntime = Depends(get_runtime)
) -> DonorOut:
    ensure_donor_access(principal, donor_id)
    async with runtime.database.read() as conn:
        row = (await conn.execute(sa.select(donors).where(donors.c.donor_id == donor_id))).mappings().first()
    if row is None:
        raise NotFound(f"donor {donor_id} is not registered; register it with POST /donors")
    return DonorOut(**row)


@router.post(
    "/pledges",
    status_code=201,
    response_model=PledgeCreated,
    summary="Register a pledge; each line becomes a batch and emits batch.pledged.",
)
async def register_pledge(
    body: PledgeIn,
    principal: Principal = Depends(WRITERS),
    idempotency_key: str | None = IDEMPOTENCY,
    runtime: ServiceRuntime = Depends(get_runtime),
) -> JSONResponse:
    ensure_donor_access(principal, body.donor_id)
    pledge_id = body.pledge_id or short_id("pledge")

    async def decide(conn: AsyncConnection) -> Outcome:
        await _require_donor(conn, body.donor_id)
        if (await conn.execute(sa.select(pledges.c.pledge_id).where(pledges.c.pledge_id == pledge_id))).first():
            raise Conflict(f"pledge {pledge_id} already exists; choose another pledge_id or leave it out")
        batches = domain.pledge_lines(pledge_id, body.donor_id, body.purpose, body.lines, body.designated_recipient_id)
        registered = domain.pledge_registered(
            pledge_id, body.donor_id, body.purpose, batches, body.funds_amount, body.funds_currency
        )
        await _insert_pledge(conn, registered)
        header = runtime.new_event(registered, pledge_id, principal.actor)
        appends = [StreamAppend(pledge_id, 0, [header])]
        for batch in batches:
            event = runtime.new_event(batch, domain.batch_id_for(pledge_id, batch.line_no), principal.actor, header.id)
            appends.append(StreamAppend(event.subject, 0, [event]))
        created = PledgeCreated(pledge_id=pledge_id, batch_ids=[a.stream_id for a in appends[1:]])
        return Outcome(body=created, status_code=201, appends=appends)

    return await run_command(runtime, principal, idempotency_key, body.model_dump(mode="json"), decide)


async def _require_donor(conn: AsyncConnection, donor_id: str) -> None:
    if (await conn.execute(sa.select(donors.c.donor_id).where(donors.c.donor_id == donor_id))).first() is None:
        raise RuleViolation(f"donor {donor_id} is not registered; register it with POST /donors first")


async def _insert_pledge(conn: AsyncConnection, registered: ref.PledgeRegistered) -> None:
    await conn.execute(
        pledges.insert().values(
            pledge_id=registered.pledge_id,
            donor_id=registered.donor_id,
            purpose=registered.purpose,
            funds_amount=registered.funds_amount,
            funds_currency=registered.funds_currency,
            lines=orjson.dumps([line.model_dump(mode="json") for line in registered.lines]).decode(),
            registered_at=format_time(utc_now()),
        )
    )


async def _load_pledge(conn: AsyncConnection, pledge_id: str) -> PledgeOut:
    row = (await conn.execute(sa.select(pledges).where(pledges.c.pledge_id == pledge_id))).mappings().first()
    if row is None:
        raise NotFound(f"pledge {pledge_id} does not exist; list pledges with GET /pledges")
    lines = orjson.loads(row["lines"])
    statuses = await _batch_statuses(conn, [line["batch_id"] for line in lines])
    return PledgeOut(
        pledge_id=row["pledge_id"],
        donor_id=row["donor_id"],
        purpose=row["purpose"],
        funds_amount=row["funds_amount"],
        funds_currency=row["funds_currency"],
        registered_at=row["registered_at"],
        lines=[PledgeLineOut(**line, status=statuses.get(line["batch_id"])) for line in lines],
    )


async def _batch_statuses(conn: AsyncConnection, batch_ids: list[str]) -> dict[str, str]:
    query = sa.select(batch_view.c.batch_id, batch_view.c.status).where(batch_view.c.batch_id.in_(batch_ids))
    return {row.batch_id: row.status for row in await conn.execute(query)}


@router.get("/pledges/{pledge_id}", response_model=PledgeOut, summary="A pledge with each line's batch state.")
async def get_pledge(
    pledge_id: str, principal: Principal = Depends(READERS), runtime: ServiceRuntime = Depends(get_runtime)
) -> PledgeOut:
    async with runtime.database.read() as conn:
        pledge = await _load_pledge(conn, pledge_id)
    ensure_donor_access(principal, pledge.donor_id)
    return pledge


@router.get("/pledges", response_model=Page[PledgeOut], summary="Pledges, paged, optionally of one donor.")
async def list_pledges(
    donor_id: str | None = Query(None),
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(READERS),
    runtime: ServiceRuntime = Depends(get_runtime),
) -> Page[PledgeOut]:
    donor_id = own_donor_filter(principal, donor_id)
    where = pledges.c.donor_id == donor_id if donor_id else sa.true()
    async with runtime.database.read() as conn:
        total = await count_rows(conn, pledges, where)
        query = sa.select(pledges.c.pledge_id).where(where).order_by(pledges.c.pledge_id)
        ids = [row.pledge_id for row in await conn.execute(query.limit(page.limit).offset(page.offset))]
        items = [await _load_pledge(conn, pledge_id) for pledge_id in ids]
    return Page.of(items, total, page)


@router.patch(
    "/pledges/{pledge_id}/lines/{line_no}", summary="Amend a pledge line while its goods are not yet received."
)
async def amend_pledge_line(
    pledge_id: str,
    line_no: int,
    body: AmendLineIn,
    principal: Principal = Depends(WRITERS),
    idempotency_key: str | None = IDEMPOTENCY,
    runtime: ServiceRuntime = Depends(get_runtime),
) -> JSONResponse:
    batch_id = domain.batch_id_for(pledge_id, line_no)

    async def decide(conn: AsyncConnection) -> Outcome:
        state, version = await load_batch(runtime, conn, batch_id)
        ensure_donor_access(principal, state.donor_id)
        amended = domain.amend_line(state, body.quantity, body.warehouse_id, body.designated_recipient_id, body.reason)
        event = runtime.new_event(amended, batch_id, principal.actor)
        return Outcome(
            body={"batch_id": batch_id, "event_id": event.id}, appends=[StreamAppend(batch_id, version, [event])]
        )

    return await run_command(
        runtime, principal, idempotency_key, {"path": batch_id, **body.model_dump(mode="json")}, decide
    )


@router.post("/pledges/{pledge_id}/cancel", summary="Cancel every line of a pledge; refused once any goods arrived.")
async def cancel_pledge(
    pledge_id: str,
    body: CancelIn,
    principal: Principal = Depends(WRITERS),
    idempotency_key: str | None = IDEMPOTENCY,
    runtime: ServiceRuntime = Depends(get_runtime),
) -> JSONResponse:
    async def decide(conn: AsyncConnection) -> Outcome:
        pledge = await _load_pledge(conn, pledge_id)
        ensure_donor_access(principal, pledge.donor_id)
        appends = []
        for line in pledge.lines:
            state, version = await load_batch(runtime, conn, line.batch_id)
            event = runtime.new_event(domain.cancel_line(state, body.reason), line.batch_id, principal.actor)
            appends.append(StreamAppend(line.batch_id, version, [event]))
        return Outcome(body={"pledge_id": pledge_id, "cancelled": [a.stream_id for a in appends]}, appends=appends)

    return await run_command(
        runtime, principal, idempotency_key, {"path": pledge_id, **body.model_dump(mode="json")}, decide
    )


@router.get(
    "/donors/{donor_id}/batches",
    response_model=Page[DonorBatch],
    summary="The donor's view: where every batch of every pledge is now, and what was confirmed received.",
)
async def donor_batches(
    donor_id: str,
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(READERS),
    runtime: ServiceRuntime = Depends(get_runtime),
) -> Page[DonorBatch]:
    ensure_donor_access(principal, donor_id)
    where = batch_view.c.donor_id == donor_id
    async with runtime.database.read() as conn:
        rows, total = await paged_rows(conn, batch_view, where, [batch_view.c.batch_id], page)
    return Page.of([_donor_batch(row) for row in rows], total, page)


def _donor_batch(row: sa.RowMapping) -> DonorBatch:
    state = orjson.loads(row["state"])
    return DonorBatch(
        batch_id=row["batch_id"],
        pledge_id=row["pledge_id"],
        parent_batch_id=row["parent_batch_id"],
        item=row["item"],
        status=row["status"],
        site_id=row["site_id"],
        shipment_id=row["shipment_id"],
        recipient_id=row["recipient_id"],
        quantity_pledged=state["quantity_pledged"],
        delivered=state["delivered"],
        confirmed_received=state["confirmed_received"],
        confirmed_damaged=state["confirmed_damaged"],
        written_off=state["written_off_stock"] + state["written_off_transit"],
    )
