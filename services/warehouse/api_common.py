"""What every warehouse write route shares: roles, the Idempotency-Key header, and turning decisions into appends.

A route states who may call it and what to decide; this module runs the decision through the shared `execute`,
so every command is one transaction with optimistic concurrency and an idempotent answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import Header
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from services.warehouse.domain import Decision, site_of
from services.warehouse.projections import sync_allocations
from services.warehouse.schemas import BatchCommandResult
from shared.domain.batch_fold import allowed_events
from shared.domain.batch_state import BatchState
from shared.domain.errors import NotFound
from shared.events.envelope import Envelope, new_event_id
from shared.projections.batch_view import state_to_json
from shared.store.event_store import StreamAppend
from shared.web.auth import Principal, Role, current_principal, ensure_site_access, require_roles
from shared.web.commands import Outcome, load_batch
from shared.web.route_helpers import now, run_command
from shared.web.runtime import ServiceRuntime

OPERATORS = require_roles(Role.operator)  # admin passes every role check
ADMINS = require_roles(Role.admin)
READERS = current_principal
# Work queues that name every donor's batches: donors read their own at the pledge service instead.
STAFF_READERS = require_roles(Role.operator, Role.dispatcher, Role.recipient_staff, Role.auditor)
IDEMPOTENCY = Header(
    None,
    alias="Idempotency-Key",
    max_length=100,  # stored with the service name and the caller's identity in a 200-character column
    description="Repeat a request safely: the same key returns the first answer and writes nothing again.",
)

BatchDecide = Callable[[BatchState], Decision]

REFUSALS: dict[int | str, dict[str, Any]] = {
    403: {"description": "The caller may not act on the batch's site (operators act on their own sites only)."},
    404: {
        "description": "The batch, need or allocation is not known to the warehouse; the message says what to check."
    },
    409: {"description": "The batch's state does not allow this; the body names current_state and allowed."},
    422: {"description": "The request breaks a rule; the body says which rule, with the numbers, and how to fix it."},
}


def new_id(prefix: str) -> str:
    """Millisecond time first (UUIDv7), then randomness: ids sort by creation and stay short enough to read."""
    digits = new_event_id().replace("-", "")
    return f"{prefix}-{digits[:12]}{digits[-6:]}"


def envelopes(runtime: ServiceRuntime, decision: Decision, actor: str, causation_id: str | None) -> list[Envelope]:
    """Events of one decision; each later event names the first one of the command as its cause."""
    written: list[Envelope] = []
    for payload in decision.payloads:
        event = runtime.new_event(payload, decision.stream_id, actor, causation_id)
        causation_id = causation_id or event.id
        written.append(event)
    return written


def result_of(decision: Decision, events: Sequence[Envelope]) -> BatchCommandResult:
    return BatchCommandResult(
        batch_id=decision.stream_id,
        status=decision.state.status.value,
        event_ids=[event.id for event in events],
        state=state_to_json(decision.state),
        allowed_next=allowed_events(decision.state),
    )


async def append_decisions(
    runtime: ServiceRuntime, conn: AsyncConnection, decisions: Sequence[tuple[Decision, int]], actor: str
) -> tuple[list[StreamAppend], list[BatchCommandResult]]:
    """Appends at the expected versions, and the allocation rows of the new states, in the command's transaction."""
    appends: list[StreamAppend] = []
    results: list[BatchCommandResult] = []
    causation_id: str | None = None
    for decision, expected_version in decisions:
        events = envelopes(runtime, decision, actor, causation_id)
        causation_id = causation_id or events[0].id
        appends.append(StreamAppend(decision.stream_id, expected_version, events))
        results.append(result_of(decision, events))
        await sync_allocations(conn, decision.state, now())
    return appends, results


async def load_for_command(
    runtime: ServiceRuntime, conn: AsyncConnection, batch_id: str, not_found: str | None = None
) -> tuple[BatchState, int]:
    try:
        return await load_batch(runtime, conn, batch_id)
    except NotFound:
        if not_found is None:
            raise
        raise NotFound(not_found) from None


async def batch_command(
    runtime: ServiceRuntime,
    principal: Principal,
    idempotency_key: str | None,
    batch_id: str,
    request: dict[str, Any],
    decide_for: BatchDecide,
    *,
    not_found: str | None = None,
) -> JSONResponse:
    """One command on one batch by someone working at the batch's site (or an admin)."""

    async def decide(conn: AsyncConnection) -> Outcome:
        state, version = await load_for_command(runtime, conn, batch_id, not_found)
        ensure_site_access(principal, site_of(state))
        appends, results = await append_decisions(runtime, conn, [(decide_for(state), version)], principal.actor)
        return Outcome(body=results[0], appends=appends)

    return await run_command(runtime, principal, idempotency_key, {"batch_id": batch_id, **request}, decide)
