"""HTTP routes of the recipient service: recipients, their needs, what is coming to them, and receipts.

Reads are open to every authenticated role, because making the distribution of donations answerable is the
point of the record; only the incoming view of one recipient is limited: recipient staff see their own recipient's,
and donors none (it names every donor's batches; a donor follows their own at the pledge service).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from services.recipient import domain, repository
from services.recipient.projections import incoming_batches
from services.recipient.schemas import (
    ConfirmReceiptIn,
    IncomingBatch,
    IncomingStatus,
    NeedDetail,
    NeedIn,
    NeedOut,
    NeedStatus,
    ReceiptOut,
    RecipientIn,
    RecipientOut,
)
from services.recipient.tables import needs, recipients
from shared.domain.batch_state import BatchState
from shared.events import batch_events as ev
from shared.events import reference_events as ref
from shared.events.envelope import Envelope, format_time, utc_now
from shared.store.event_store import StreamAppend
from shared.web.auth import (
    Principal,
    Role,
    current_principal,
    ensure_recipient_access,
    forbidden,
    require_roles,
)
from shared.web.commands import Outcome, load_batch
from shared.web.pagination import Page, PageParams, page_params
from shared.web.route_helpers import IDEMPOTENCY, paged_rows, run_command, short_id
from shared.web.runtime import ServiceRuntime, get_runtime

router = APIRouter(tags=["recipients"])
ADMINS = require_roles(Role.admin)
RECIPIENT_WRITERS = require_roles(Role.recipient_staff, Role.admin)
STAFF_READERS = require_roles(Role.operator, Role.dispatcher, Role.recipient_staff, Role.auditor)
COUNTRY_FILTER = Query(None, pattern=r"^[A-Za-z]{2}$", description="ISO 3166-1 alpha-2 code, e.g. IT.")


# --- recipients ------------------------------------------------------------------------------------------


@router.post(
    "/recipients",
    status_code=201,
    response_model=RecipientOut,
    summary="Register a recipient and its receiving facility (recipient.registered + site.registered). Admin only.",
)
async def register_recipient(
    body: RecipientIn,
    principal: Principal = Depends(ADMINS),
    idempotency_key: str | None = IDEMPOTENCY,
    runtime: ServiceRuntime = Depends(get_runtime),
) -> JSONResponse:
    recipient_id = body.recipient_id or short_id("recipient")

    async def decide(conn: AsyncConnection) -> Outcome:
        await repository.require_new_recipient(conn, runtime.store, recipient_id, body.site_id)
        registered = ref.RecipientRegistered(recipient_id=recipient_id, **body.model_dump(exclude={"recipient_id"}))
        facility = ref.SiteRegistered(
            site_id=body.site_id,
            name=body.name,
            kind=ref.SiteKind.RECIPIENT_FACILITY,
            city=body.city,
            country=body.country,
            recipient_id=recipient_id,
        )
        created = await repository.insert_recipient(conn, registered, format_time(utc_now()))
        recipient_event = runtime.new_event(registered, recipient_id, principal.actor)
        site_event = runtime.new_event(facility, body.site_id, principal.actor, recipient_event.id)
        appends = [StreamAppend(recipient_id, 0, [recipient_event]), StreamAppend(body.site_id, 0, [site_event])]
        return Outcome(body=created, status_code=201, appends=appends)

    return await run_command(runtime, principal, idempotency_key, body.model_dump(mode="json"), decide)


@router.get("/recipients", response_model=Page[RecipientOut], summary="Registered recipients, filtered and paged.")
async def list_recipients(
    kind: ref.RecipientKind | None = Query(None, description="hospital, health_committee or civil_protection."),
    frontline: bool | None = Query(None, description="Only frontline (true) or only other (false) recipients."),
    country: str | None = COUNTRY_FILTER,
    page: PageParams = Depends(page_params),
    _: Principal = Depends(current_principal),
    runtime: ServiceRuntime = Depends(get_runtime),
) -> Page[RecipientOut]:
    where = repository.recipient_filters(kind, frontline, country)
    async with runtime.database.read() as conn:
        rows, total = await paged_rows(conn, recipients, where, [recipients.c.recipient_id], page)
    return Page.of([RecipientOut(**row) for row in rows], total, page)


@router.get("/recipients/{recipient_id}", response_model=RecipientOut, summary="One recipient.")
async def get_recipient(
    recipient_id: str, _: Principal = Depends(current_principal), runtime: ServiceRuntime = Depends(get_runtime)
) -> RecipientOut:
    async with runtime.database.read() as conn:
        return await repository.require_recipient(conn, recipient_id)


@router.get(
    "/recipients/{recipient_id}/incoming",
    response_model=Page[IncomingBatch],
    summary="Batches allocated, picked, in transit, at a hub, delivered or confirmed for this recipient.",
)
async def list_incoming(
    recipient_id: str,
    status: IncomingStatus | None = Query(None, description="Only batches in this state."),
    page: PageParams = Depends(page_params),
    principal: Principal = Depends(STAFF_READERS),
    runtime: ServiceRuntime = Depends(get_runtime),
) -> Page[IncomingBatch]:
    ensure_recipient_access(principal, recipient_id)
    statuses = [status] if status else list(IncomingStatus)
    async with runtime.database.read() as conn:
        await repository.require_recipient(conn, recipient_id)
        return await incoming_batches(conn, recipient_id, statuses, page)


# --- needs -----------------------------------------------------------------------------------------------


@router.post(
    "/needs",
    status_code=201,
    response_model=NeedOut,
    summary="Register a recipient's need (need.registered). Its own staff, or an admin.",
)
async def register_need(
    body: NeedIn,
    principal: Principal = Depends(RECIPIENT_WRITERS),
    idempotency_key: str | None = IDEMPOTENCY,
    runtime: ServiceRuntime = Depends(get_runtime),
) -> JSONResponse:
    ensure_recipient_access(principal, body.recipient_id)
    if body.historical and not principal.is_admin:
        raise forbidden("only an admin may record a historical need (historical: true, deadline in the past)")
    need_id = body.need_id or short_id("need")

    async def decide(conn: AsyncConnection) -> Outcome:
        await repository.require_registered_recipient(conn, body.recipient_id)
        await repository.require_unused_stream(conn, runtime.store, need_id, "need_id")
        registered = domain.need_registered(
            need_id,
            body.recipient_id,
            body.item,
            body.quantity,
            body.priority,
            body.deadline,
            now=utc_now(),
            historical=body.historical,
        )
        created = await repository.insert_need(conn, registered, format_time(utc_now()))
        event = runtime.new_event(registered, need_id, principal.actor)
        return Outcome(body=created, status_code=201, appends=[StreamAppend(need_id, 0, [event])])

    return await run_command(runtime, principal, idempotency_key, body.model_dump(mode="json"), decide)


@router.get(
    "/needs",
    response_model=Page[NeedOut],
    summary="Needs with quantity, received so far and remaining; most urgent first, filtered and paged.",
)
async def list_needs(
    recipient_id: str | None = Query(None),
    item: str | None = Query(None, description="Catalogue item, e.g. n95-mask."),
    status: NeedStatus | None = Query(None, description="open or fulfilled."),
    priority: ref.Priority | None = Query(None, description="critical, high, normal or low."),
    page: PageParams = Depends(page_params),
    _: Principal = Depends(current_principal),
    runtime: ServiceRuntime = Depends(get_runtime),
) -> Page[NeedOut]:
    where = repository.need_filters(recipient_id, item, status, priority)
    async with runtime.database.read() as conn:
        rows, total = await paged_rows(conn, needs, where, repository.needs_in_priority_order(), page)
    return Page.of([repository.need_out(row) for row in rows], total, page)


@router.get("/needs/{need_id}", response_model=NeedDetail, summary="One need with the receipts counted toward it.")
async def get_need(
    need_id: str, _: Principal = Depends(current_principal), runtime: ServiceRuntime = Depends(get_runtime)
) -> NeedDetail:
    async with runtime.database.read() as conn:
        return await repository.need_detail(conn, need_id)


# --- receipts --------------------------------------------------------------------------------------------


@router.post(
    "/batches/{batch_id}/confirm-receipt",
    response_model=ReceiptOut,
    summary="Confirm receipt of a delivered batch (batch.receipt-confirmed); counts it toward its need.",
)
async def confirm_receipt(
    body: ConfirmReceiptIn,
    batch_id: str = Path(description="The delivered batch."),
    principal: Principal = Depends(RECIPIENT_WRITERS),
    idempotency_key: str | None = IDEMPOTENCY,
    runtime: ServiceRuntime = Depends(get_runtime),
) -> JSONResponse:
    async def decide(conn: AsyncConnection) -> Outcome:
        state, version = await load_batch(runtime, conn, batch_id)
        ensure_may_confirm(principal, state)
        payload, confirmed = domain.confirm_receipt(
            state, body.quantity_received, body.quantity_damaged, body.signed_by, body.discrepancy_reason
        )
        receipt = runtime.new_event(payload, batch_id, principal.actor)
        counting = await count_toward_need(runtime, conn, state, payload, receipt, principal)
        answer = ReceiptOut(
            batch_id=batch_id,
            event_id=receipt.id,
            recipient_id=payload.recipient_id,
            status=confirmed.status.value,
            delivered=confirmed.delivered,
            quantity_received=payload.quantity_received,
            quantity_damaged=payload.quantity_damaged,
            need=counting.need,
            need_fulfilled_event_id=counting.fulfilled_event_id,
        )
        return Outcome(body=answer, appends=[StreamAppend(batch_id, version, [receipt]), *counting.appends])

    return await run_command(
        runtime, principal, idempotency_key, {"path": batch_id, **body.model_dump(mode="json")}, decide
    )


def ensure_may_confirm(principal: Principal, state: BatchState) -> None:
    """Checked before the fold, so that staff of another recipient learn nothing about the batch's state."""
    recipient_id = domain.receiving_recipient(state)
    if recipient_id is not None:
        ensure_recipient_access(principal, recipient_id)
    elif principal.role is Role.recipient_staff:
        raise forbidden(f"batch {state.batch_id} is not bound for any recipient; {principal.actor} may not confirm it")


@dataclass(frozen=True)
class NeedCounting:
    need: NeedOut | None
    fulfilled: StreamAppend | None = None

    @property
    def appends(self) -> list[StreamAppend]:
        return [self.fulfilled] if self.fulfilled else []

    @property
    def fulfilled_event_id(self) -> str | None:
        return self.fulfilled.envelopes[0].id if self.fulfilled else None


async def count_toward_need(
    runtime: ServiceRuntime,
    conn: AsyncConnection,
    state: BatchState,
    receipt: ev.ReceiptConfirmed,
    receipt_event: Envelope,
    principal: Principal,
) -> NeedCounting:
    """Add the receipt to the need the batch was allocated for, in the confirmation's own transaction."""
    need_id = domain.need_of(state)
    tally = await repository.lock_need_tally(conn, need_id) if need_id else None
    if tally is None or not domain.counts_toward(tally, receipt.recipient_id, state.item):
        return NeedCounting(need=await repository.find_need(conn, need_id) if need_id else None)
    effect = domain.count_receipt(tally, receipt.quantity_received)
    now = format_time(utc_now())
    await repository.record_receipt(conn, effect, state.batch_id, receipt_event.id, now)
    need = await repository.find_need(conn, tally.need_id)
    if not effect.fulfilled_now:
        return NeedCounting(need=need)
    event = runtime.new_event(domain.need_fulfilled(effect.tally), tally.need_id, principal.actor, receipt_event.id)
    version = await runtime.store.current_version(conn, tally.need_id)
    return NeedCounting(need=need, fulfilled=StreamAppend(tally.need_id, version, [event]))
