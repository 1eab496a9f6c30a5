"""Routes that change a batch while it is in the warehouse: intake, inspection, quarantine, redesignation and
write-off. Each is a thin wrapper: the decision is in `domain`, the rules in the shared fold."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from services.warehouse import domain
from services.warehouse.api_common import ADMINS, IDEMPOTENCY, OPERATORS, REFUSALS, batch_command
from services.warehouse.queries import require_recipient
from services.warehouse.schemas import (
    BatchCommandResult,
    InspectIn,
    ReceiveIn,
    RedesignateIn,
    ResolveQuarantineIn,
    WriteOffIn,
)
from shared.domain.batch_state import BatchState
from shared.events import batch_events as ev
from shared.web.auth import Principal
from shared.web.runtime import ServiceRuntime, get_runtime

router = APIRouter(prefix="/batches", tags=["intake and inspection"])


def unknown_for_receipt(batch_id: str) -> str:
    return (
        f"batch {batch_id} is not known to the warehouse (yet): no batch.pledged event for it has arrived. "
        "Check the batch id on the delivery note (it is <pledge_id>-<line_no>) against GET "
        "/sites/{site_id}/expected-intake; if the pledge was registered just now, retry in a few seconds"
    )


@router.post(
    "/{batch_id}/receive",
    response_model=BatchCommandResult,
    responses=REFUSALS,
    summary="Record the goods of a pledged batch arriving at its warehouse (batch.received v2).",
)
async def receive_batch(
    batch_id: str,
    body: ReceiveIn,
    principal: Principal = Depends(OPERATORS),
    idempotency_key: str | None = IDEMPOTENCY,
    runtime: ServiceRuntime = Depends(get_runtime),
) -> JSONResponse:
    receipt = ev.BatchReceived(**body.model_dump())

    def decide(state: BatchState) -> domain.Decision:
        return domain.receive(state, receipt)

    request = {"route": "receive", **body.model_dump(mode="json")}
    return await batch_command(
        runtime, principal, idempotency_key, batch_id, request, decide, not_found=unknown_for_receipt(batch_id)
    )


@router.post(
    "/{batch_id}/inspect",
    response_model=BatchCommandResult,
    responses=REFUSALS,
    summary="Record the quality inspection against the declared standard: accepted, rejected, quarantined.",
)
async def inspect_batch(
    batch_id: str,
    body: InspectIn,
    principal: Principal = Depends(OPERATORS),
    idempotency_key: str | None = IDEMPOTENCY,
    runtime: ServiceRuntime = Depends(get_runtime),
) -> JSONResponse:
    inspection = ev.BatchInspected(**body.model_dump())

    def decide(state: BatchState) -> domain.Decision:
        return domain.inspect(state, inspection)

    request = {"route": "inspect", **body.model_dump(mode="json")}
    return await batch_command(runtime, principal, idempotency_key, batch_id, request, decide)


@router.post(
    "/{batch_id}/quarantine/resolve",
    response_model=BatchCommandResult,
    responses=REFUSALS,
    summary="Release quarantined units into stock or reject them.",
)
async def resolve_quarantine(
    batch_id: str,
    body: ResolveQuarantineIn,
    principal: Principal = Depends(OPERATORS),
    idempotency_key: str | None = IDEMPOTENCY,
    runtime: ServiceRuntime = Depends(get_runtime),
) -> JSONResponse:
    resolution = ev.QuarantineResolved(**body.model_dump())

    def decide(state: BatchState) -> domain.Decision:
        return domain.decide(state, resolution)

    request = {"route": "quarantine_resolve", **body.model_dump(mode="json")}
    return await batch_command(runtime, principal, idempotency_key, batch_id, request, decide)


@router.post(
    "/{batch_id}/redesignate",
    response_model=BatchCommandResult,
    responses=REFUSALS,
    summary="Change the recipient a batch is designated to (admin, as the approver); lifts the designation lock.",
)
async def redesignate_batch(
    batch_id: str,
    body: RedesignateIn,
    principal: Principal = Depends(ADMINS),
    idempotency_key: str | None = IDEMPOTENCY,
    runtime: ServiceRuntime = Depends(get_runtime),
) -> JSONResponse:
    async with runtime.database.read() as conn:
        await require_recipient(conn, body.to_recipient_id)

    def decide(state: BatchState) -> domain.Decision:
        return domain.redesignate(state, body.to_recipient_id, body.approved_by, body.reason)

    request = {"route": "redesignate", **body.model_dump(mode="json")}
    return await batch_command(runtime, principal, idempotency_key, batch_id, request, decide)


@router.post(
    "/{batch_id}/write-off",
    response_model=BatchCommandResult,
    responses=REFUSALS,
    summary="Write off free stock that expired, was damaged or was lost (batch.written-off, stage stock).",
)
async def write_off_batch(
    batch_id: str,
    body: WriteOffIn,
    principal: Principal = Depends(OPERATORS),
    idempotency_key: str | None = IDEMPOTENCY,
    runtime: ServiceRuntime = Depends(get_runtime),
) -> JSONResponse:
    def decide(state: BatchState) -> domain.Decision:
        return domain.write_off(state, body.quantity, ev.WriteOffReason(body.reason.value), body.note)

    request = {"route": "write_off", **body.model_dump(mode="json")}
    return await batch_command(runtime, principal, idempotency_key, batch_id, request, decide)
