"""The warehouse's decisions: pure functions from a command and a batch's current state to new events.

Each decision builds the event and applies it to the state with the shared fold, which is the one place where
quantities and transitions are checked; the checks here are only the ones the fold cannot know about (which
warehouse is doing the receiving, which standard the inspector checked, what a need still lacks).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from services.warehouse.allocation import OpenNeed, is_expired
from shared.domain.batch_fold import allowed_events, apply, fold, short_name
from shared.domain.batch_state import BatchState
from shared.domain.errors import Conflict, RuleViolation
from shared.events import batch_events as ev


@dataclass(frozen=True, slots=True)
class Decision:
    """The events for one stream and the state they lead to (already checked by the fold)."""

    stream_id: str
    payloads: list[ev.Payload]
    state: BatchState


def site_of(state: BatchState) -> str:
    """Where the batch physically is; before intake that is the warehouse it was pledged to."""
    return state.location_site_id or state.warehouse_id


def refuse(state: BatchState, message: str) -> RuleViolation:
    return RuleViolation(
        f"batch {state.batch_id} ({state.status.value}): {message}",
        current_state=state.status.value,
        allowed=allowed_events(state),
    )


def require_transition(state: BatchState, payload: ev.Payload) -> None:
    """Refuse with the fold's own 409 when the state does not accept this event at all, before other checks."""
    if short_name(payload.event_type) not in allowed_events(state):
        apply(state, payload, state.batch_id)


def decide(state: BatchState, payload: ev.Payload) -> Decision:
    return Decision(state.batch_id, [payload], apply(state, payload, state.batch_id))


def receive(state: BatchState, receipt: ev.BatchReceived) -> Decision:
    require_transition(state, receipt)
    if receipt.site_id != state.warehouse_id:
        raise refuse(
            state,
            f"it was pledged to warehouse {state.warehouse_id}, not {receipt.site_id}; receive it at "
            f"{state.warehouse_id}, or have the donor amend the pledge line's warehouse first",
        )
    return decide(state, receipt)


def same_standard(declared: str, checked: str) -> bool:
    """Case and spacing are not what a standard is about: 'EN 14126' and 'en  14126' name the same one."""
    return " ".join(declared.split()).casefold() == " ".join(checked.split()).casefold()


def inspect(state: BatchState, inspection: ev.BatchInspected) -> Decision:
    require_transition(state, inspection)
    if state.standard and not same_standard(state.standard, inspection.standard_checked):
        raise refuse(
            state,
            f"the donor declared standard {state.standard!r}; inspect against {state.standard!r}, "
            f"not {inspection.standard_checked!r}",
        )
    return decide(state, inspection)


def redesignate(state: BatchState, to_recipient_id: str, approved_by: str, reason: str) -> Decision:
    payload = ev.BatchRedesignated(
        from_recipient_id=state.designated_recipient_id,
        to_recipient_id=to_recipient_id,
        approved_by=approved_by,
        reason=reason,
    )
    require_transition(state, payload)
    if state.designated_recipient_id == to_recipient_id:
        raise refuse(state, f"it is already designated to {to_recipient_id}; nothing to change")
    return decide(state, payload)


def allocate(state: BatchState, need: OpenNeed, quantity: int, allocation_id: str, today: date) -> Decision:
    """A manual allocation: the same rules as an allocation run, for one batch and one need."""
    payload = ev.BatchAllocated(
        allocation_id=allocation_id, need_id=need.need_id, recipient_id=need.recipient_id, quantity=quantity
    )
    require_transition(state, payload)
    if need.item != state.item:
        raise refuse(state, f"it holds {state.item}, but need {need.need_id} is for {need.item}")
    if quantity > need.remaining:
        raise refuse(
            state,
            f"need {need.need_id} of {need.recipient_id} still lacks only {need.remaining}; allocate at most that",
        )
    if is_expired(state, today):
        raise refuse(state, f"lot {state.lot or '(none)'} expired on {state.expiry}; expired stock is never allocated")
    return decide(state, payload)


def child_batch_id(state: BatchState) -> str:
    """Children are numbered under their parent, so the id alone shows the lineage."""
    return f"{state.batch_id}.{len(state.children) + 1}"


def pick(state: BatchState, allocation_id: str, picker: str) -> list[Decision]:
    """The whole batch when the allocation takes all of it; otherwise a child batch split off and picked."""
    allocation = state.allocation(allocation_id)
    if allocation is None:
        open_ids = ", ".join(a.allocation_id for a in state.allocations) or "none"
        raise Conflict(
            f"batch {state.batch_id} ({state.status.value}) has no open allocation {allocation_id} "
            f"(open allocations: {open_ids}); it may have been picked already",
            current_state=state.status.value,
            allowed=allowed_events(state),
        )
    picked = ev.BatchPicked(allocation_id=allocation_id, quantity=allocation.quantity, picker=picker)
    if allocation.quantity == state.on_hand and len(state.allocations) == 1:
        return [decide(state, picked)]
    child_id = child_batch_id(state)
    split = ev.BatchSplit(child_batch_id=child_id, allocation_id=allocation_id, quantity=allocation.quantity)
    parent = decide(state, split)
    created = ev.BatchCreatedBySplit(
        parent_batch_id=state.batch_id,
        root_batch_id=state.root_batch_id or state.batch_id,
        pledge_id=state.pledge_id,
        donor_id=state.donor_id,
        item=state.item,
        category=state.category,
        unit=ev.Unit(state.unit),
        standard=state.standard,
        quantity=allocation.quantity,
        site_id=site_of(state),
        lot=state.lot,
        expiry=state.expiry,
        designated_recipient_id=state.designated_recipient_id,
        allocation_id=allocation.allocation_id,
        need_id=allocation.need_id,
        recipient_id=allocation.recipient_id,
    )
    child = fold([created, picked], child_id)
    assert child is not None  # a split-created event always births a batch
    return [parent, Decision(child_id, [created, picked], child)]


def write_off(state: BatchState, quantity: int, reason: ev.WriteOffReason, note: str) -> Decision:
    payload = ev.BatchWrittenOff(quantity=quantity, reason=reason, stage=ev.WriteOffStage.STOCK, note=note)
    return decide(state, payload)
