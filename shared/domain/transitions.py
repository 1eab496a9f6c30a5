"""Which events each batch state accepts, and the refusals that name the state and what is allowed next.

Kept apart from the fold's steps so that the table reads on one screen and every step module can refuse in the
same words.
"""

from __future__ import annotations

from shared.domain.batch_state import BatchState, BatchStatus
from shared.domain.errors import IllegalTransition, RuleViolation

S = BatchStatus

# Which events each state accepts. The refusal messages are generated from this table.
ALLOWED: dict[BatchStatus | None, tuple[str, ...]] = {
    None: ("pledged", "split-created"),
    S.PLEDGED: ("amended", "cancelled", "received", "redesignated"),
    S.RECEIVED: ("inspected", "redesignated"),
    S.QUARANTINED: ("quarantine-resolved", "redesignated"),
    S.IN_STOCK: ("allocated", "picked", "split", "written-off", "redesignated", "quarantine-resolved"),
    S.ALLOCATED: ("picked", "split", "written-off", "quarantine-resolved"),
    S.REJECTED: (),
    S.SPLIT: ("quarantine-resolved",),
    S.PICKED: ("dispatched", "written-off"),
    S.IN_TRANSIT: ("arrived", "delivered", "written-off"),
    S.AT_HUB: ("handed-over", "departed", "written-off"),
    S.DELIVERED: ("receipt-confirmed",),
    S.CONFIRMED: (),
    S.CANCELLED: (),
    S.WRITTEN_OFF: (),
}


def short_name(event_type: str) -> str:
    """`org.aidtrail.batch.received.v2` -> `received`."""
    return event_type.split(".")[-2]


def allowed_events(state: BatchState | None) -> list[str]:
    return list(ALLOWED[state.status if state else None])


def illegal(state: BatchState | None, name: str) -> IllegalTransition:
    current = state.status.value if state else "no batch yet"
    allowed = allowed_events(state)
    who = f"batch {state.batch_id}" if state else "this batch"
    return IllegalTransition(
        f"{who} is {current}; '{name}' is not allowed there. Allowed next: {', '.join(allowed) or 'nothing (final)'}",
        current_state=current,
        allowed=allowed,
    )


def violation(state: BatchState, message: str) -> RuleViolation:
    return RuleViolation(
        f"batch {state.batch_id} ({state.status.value}): {message}",
        current_state=state.status.value,
        allowed=allowed_events(state),
    )
