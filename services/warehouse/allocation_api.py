"""Routes that match stock to needs and pick it: allocation runs, manual allocations, picking (and splitting),
and the warehouse's views of needs and allocations."""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from services.warehouse import allocation, domain
from services.warehouse.api_common import (
    IDEMPOTENCY,
    OPERATORS,
    READERS,
    REFUSALS,
    append_decisions,
    load_for_command,
    new_id,
)
from services.warehouse.queries import batch_ids_at, load_states, need_for_allocation, need_out, needs_query, open_needs
from services.warehouse.schemas import (
    AllocateIn,
    AllocationMade,
    AllocationOut,
    AllocationRunIn,
    AllocationRunResult,
    BatchCommandResult,
    NeedOut,
    PickIn,
    PickResult,
    UnallocatedStock,
)
from services.warehouse.tables import allocations
from shared.domain.batch_state import BatchStatus
from shared.domain.errors import NotFound
from shared.web.auth import SITE_SCOPED_ROLES, Principal, ensure_site_access
from shared.web.commands import Outcome
from shared.web.pagination import Page, PageParams, page_params
from shared.web.route_helpers import run_command
from shared.web.runtime import ServiceRuntime, get_runtime

router = APIRouter(tags=["allocation and picking"])

# Batches an allocation run looks at: those with free stock, and those whose quarantine it should point out.
RUN_STATUSES = [
    s.value for s in (BatchStatus.IN_STOCK, BatchStatus.ALLOCATED, BatchStatus.QUARANTINED, BatchStatus.SPLIT)
]


def utc_today() -> date:
    return datetime.now(UTC).date()


def run_sites(principal: Principal, site_id: str | None) -> list[str] | None:
    """The sites a run may touch: the one named, else an operator's own sites, else (admin) all of them."""
    if site_id is not None:
        ensure_site_access(principal, site_id)
        return [site_id]
    if principal.role in SITE_SCOPED_ROLES:
        return sorted(principal.sites)
    return None


@router.post(
    "/allocations/run",
    response_model=AllocationRunResult,
    responses=REFUSALS,
    summary="Allocate free stock to open needs: frontline first, then earliest deadline, then oldest need.",
)
async def run_allocation(
    body: AllocationRunIn,
    principal: Principal = Depends(OPERATORS),
    idempotency_key: str | None = IDEMPOTENCY,
    runtime: ServiceRuntime = Depends(get_runtime),
) -> JSONResponse:
    site_ids = run_sites(principal, body.site_id)

    async def decide(conn: AsyncConnection) -> Outcome:
        batch_ids = await batch_ids_at(conn, RUN_STATUSES, site_ids, body.item)
        states, versions = await load_states(conn, runtime.store, batch_ids)
        needs = await open_needs(conn, sorted({state.item for state in states}))
        plan = allocation.plan(states, needs, utc_today(), lambda: new_id("alloc"))
        decisions = [
            (domain.Decision(batch_id, list(plan.payloads_for(batch_id)), plan.states[batch_id]), versions[batch_id])
            for batch_id in plan.changed_batches()
        ]
        appends, _ = await append_decisions(runtime, conn, decisions, principal.actor)
        return Outcome(body=_run_result(plan), appends=appends)

    request = {"route": "allocation_run", "sites": site_ids, **body.model_dump(mode="json")}
    return await run_command(runtime, principal, idempotency_key, request, decide)


def _run_result(plan: allocation.AllocationPlan) -> AllocationRunResult:
    made = [
        AllocationMade(
            allocation_id=planned.payload.allocation_id,
            batch_id=planned.batch_id,
            need_id=planned.payload.need_id,
            recipient_id=planned.payload.recipient_id,
            item=plan.states[planned.batch_id].item,
            quantity=planned.payload.quantity,
            priority_rank=planned.payload.priority_rank,
        )
        for planned in plan.allocations
    ]
    unallocated = [
        UnallocatedStock(
            batch_id=e.batch_id, item=e.item, quantity=e.quantity, reason=e.reason.value, message=e.message
        )
        for e in plan.explanations
    ]
    return AllocationRunResult(allocations=made, not_allocated=unallocated)


@router.post(
    "/batches/{batch_id}/allocate",
    response_model=BatchCommandResult,
    responses=REFUSALS,
    summary="Allocate part of a batch to one need by hand; the designation lock and free stock still apply.",
)
async def allocate_batch(
    batch_id: str,
    body: AllocateIn,
    principal: Principal = Depends(OPERATORS),
    idempotency_key: str | None = IDEMPOTENCY,
    runtime: ServiceRuntime = Depends(get_runtime),
) -> JSONResponse:
    async def decide(conn: AsyncConnection) -> Outcome:
        state, version = await load_for_command(runtime, conn, batch_id)
        ensure_site_access(principal, domain.site_of(state))
        need = await need_for_allocation(conn, body.need_id)
        decision = domain.allocate(state, need, body.quantity, new_id("alloc"), utc_today())
        appends, results = await append_decisions(runtime, conn, [(decision, version)], principal.actor)
        return Outcome(body=results[0], appends=appends)

    request = {"route": "allocate", "batch_id": batch_id, **body.model_dump(mode="json")}
    return await run_command(runtime, principal, idempotency_key, request, decide)


@router.post(
    "/allocations/{allocation_id}/pick",
    response_model=PickResult,
    responses=REFUSALS,
    summary="Pick an allocation: the whole batch, or a child batch split off the parent in the same transaction.",
)
async def pick_allocation(
    allocation_id: str,
    body: PickIn,
    principal: Principal = Depends(OPERATORS),
    idempotency_key: str | None = IDEMPOTENCY,
    runtime: ServiceRuntime = Depends(get_runtime),
) -> JSONResponse:
    async def decide(conn: AsyncConnection) -> Outcome:
        batch_id = await _batch_holding(conn, allocation_id)
        state, version = await load_for_command(runtime, conn, batch_id)
        ensure_site_access(principal, domain.site_of(state))
        decisions = domain.pick(state, allocation_id, body.picker)
        expected = [version] + [0] * (len(decisions) - 1)  # a child stream starts empty
        appends, results = await append_decisions(
            runtime, conn, list(zip(decisions, expected, strict=True)), principal.actor
        )
        return Outcome(body=_pick_result(allocation_id, results), appends=appends)

    request = {"route": "pick", "allocation_id": allocation_id, **body.model_dump(mode="json")}
    return await run_command(runtime, principal, idempotency_key, request, decide)


async def _batch_holding(conn: AsyncConnection, allocation_id: str) -> str:
    query = sa.select(allocations.c.batch_id).where(allocations.c.allocation_id == allocation_id)
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(f"allocation {allocation_id} is not known; list allocations with GET /allocations?status=open")
    return str(row.batch_id)


def _pick_result(allocation_id: str, results: list[BatchCommandResult]) -> PickResult:
    child = results[1] if len(results) > 1 else None
    return PickResult(
        allocation_id=allocation_id,
        picked_batch_id=(child or results[0]).batch_id,
        split=child is not None,
        parent=results[0],
        child=child,
    )


@router.get("/allocations", response_model=Page[AllocationOut], summary="Allocations, filtered and paged.")
async def list_allocations(
    batch_id: str | None = Query(None, description="Only allocations held by this batch."),
    recipient_id: str | None = Query(None),
    need_id: str | None = Query(None),
    status: str | None = Query(None, description="open, picked, in_transit, delivered, confirmed, written_off."),
    page: PageParams = Depends(page_params),
    _: Principal = Depends(READERS),
    runtime: ServiceRuntime = Depends(get_runtime),
) -> Page[AllocationOut]:
    filters = {"batch_id": batch_id, "recipient_id": recipient_id, "need_id": need_id, "status": status}
    where = sa.and_(sa.true(), *(allocations.c[name] == value for name, value in filters.items() if value))
    query = sa.select(allocations).where(where).order_by(allocations.c.allocation_id)
    async with runtime.database.read() as conn:
        total = int(
            (await conn.execute(sa.select(sa.func.count()).select_from(allocations).where(where))).scalar() or 0
        )
        rows = (await conn.execute(query.limit(page.limit).offset(page.offset))).mappings().all()
    return Page.of([AllocationOut(**row) for row in rows], total, page)


@router.get(
    "/needs",
    response_model=Page[NeedOut],
    summary="Needs as the warehouse sees them, in allocation priority order, with what is allocated and remains.",
)
async def list_needs(
    item: str | None = Query(None),
    recipient_id: str | None = Query(None),
    status: str | None = Query(None, description="open or fulfilled."),
    unmet: bool = Query(False, description="Only needs that still lack something."),
    page: PageParams = Depends(page_params),
    _: Principal = Depends(READERS),
    runtime: ServiceRuntime = Depends(get_runtime),
) -> Page[NeedOut]:
    query = needs_query(item=item, recipient_id=recipient_id, status=status, unmet=unmet)
    async with runtime.database.read() as conn:
        total = int((await conn.execute(sa.select(sa.func.count()).select_from(query.subquery()))).scalar() or 0)
        rows = (await conn.execute(query.limit(page.limit).offset(page.offset))).mappings().all()
    return Page.of([need_out(row) for row in rows], total, page)
