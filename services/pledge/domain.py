"""The pledge service's decisions: pure functions from a command and the current state to new events."""

from __future__ import annotations

from services.pledge.schemas import PledgeLineIn
from shared.domain.batch_state import BatchState, BatchStatus
from shared.domain.errors import IllegalTransition, RuleViolation
from shared.events import batch_events as ev
from shared.events import reference_events as ref


def batch_id_for(pledge_id: str, line_no: int) -> str:
    """Batch ids are readable: the pledge id and the line number."""
    return f"{pledge_id}-{line_no}"


def pledge_lines(
    pledge_id: str, donor_id: str, purpose: str | None, lines: list[PledgeLineIn], default_recipient: str | None
) -> list[ev.BatchPledged]:
    return [
        ev.BatchPledged(
            pledge_id=pledge_id,
            donor_id=donor_id,
            line_no=line_no,
            item=line.item,
            category=line.category,
            quantity=line.quantity,
            unit=line.unit,
            standard=line.standard,
            warehouse_id=line.warehouse_id,
            designated_recipient_id=line.designated_recipient_id or default_recipient,
            purpose=purpose,
        )
        for line_no, line in enumerate(lines, start=1)
    ]


def pledge_registered(
    pledge_id: str,
    donor_id: str,
    purpose: str | None,
    batches: list[ev.BatchPledged],
    funds_amount: float | None,
    funds_currency: str | None,
) -> ref.PledgeRegistered:
    return ref.PledgeRegistered(
        pledge_id=pledge_id,
        donor_id=donor_id,
        purpose=purpose,
        funds_amount=funds_amount,
        funds_currency=funds_currency,
        lines=[
            ref.PledgeLineRef(
                batch_id=batch_id_for(pledge_id, b.line_no),
                line_no=b.line_no,
                item=b.item,
                quantity=b.quantity,
                unit=b.unit,
            )
            for b in batches
        ],
    )


def require_still_pledged(state: BatchState, action: str) -> None:
    if state.status is not BatchStatus.PLEDGED:
        raise IllegalTransition(
            f"batch {state.batch_id} is {state.status.value}: its goods have reached the warehouse or it was "
            f"cancelled, so the pledge line can no longer be {action}",
            current_state=state.status.value,
            allowed=[],
        )


def amend_line(
    state: BatchState, quantity: int | None, warehouse_id: str | None, designated_recipient_id: str | None, reason: str
) -> ev.PledgeLineAmended:
    require_still_pledged(state, "amended")
    if quantity is None and warehouse_id is None and designated_recipient_id is None:
        raise RuleViolation("an amendment changes at least one of quantity, warehouse_id, designated_recipient_id")
    return ev.PledgeLineAmended(
        quantity=quantity, warehouse_id=warehouse_id, designated_recipient_id=designated_recipient_id, reason=reason
    )


def cancel_line(state: BatchState, reason: str) -> ev.PledgeLineCancelled:
    require_still_pledged(state, "cancelled")
    return ev.PledgeLineCancelled(reason=reason)
