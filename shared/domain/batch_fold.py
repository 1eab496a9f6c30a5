"""`fold(events) -> BatchState`: the one definition of what a batch's events mean.

Every service and the auditor use this same pure function, so that they can never disagree about a batch. Each
step either returns the next state or raises a DomainError naming the current state and what is allowed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from shared.domain import batch_movement as movement
from shared.domain.batch_state import Allocation, BatchState, BatchStatus, evolve, set_on_fresh
from shared.domain.transitions import ALLOWED, allowed_events, illegal, short_name, violation
from shared.events import batch_events as ev

S = BatchStatus
P = TypeVar("P", bound=ev.Payload)
Step = Callable[[BatchState, Any], BatchState]


def fold(payloads: Iterable[ev.Payload], batch_id: str = "") -> BatchState | None:
    state: BatchState | None = None
    for payload in payloads:
        state = apply(state, payload, batch_id)
    return state


def apply(state: BatchState | None, payload: ev.Payload, batch_id: str = "") -> BatchState:
    name = short_name(payload.event_type)
    current = state.status if state else None
    if name not in ALLOWED[current]:
        raise illegal(state, name)
    if state is None:
        return _BIRTHS[type(payload)](batch_id, payload)
    after = _STEPS[type(payload)](state, payload)
    if after is state:  # every step returns a copy; this keeps `state` untouched if one ever does not
        after = evolve(state)
    return set_on_fresh(after, version=state.version + 1)


def settle(state: BatchState) -> BatchState:
    """The status of a batch that is still in a warehouse follows from its quantities."""
    return _settled(evolve(state))


def _settled(fresh: BatchState) -> BatchState:
    """`settle` on a copy the calling step has just made, so that an event costs one copy, not two."""
    return set_on_fresh(fresh, status=_settled_status(fresh))


def _settled_status(state: BatchState) -> BatchStatus:
    if state.on_hand > 0:
        status = S.ALLOCATED if state.free == 0 else S.IN_STOCK
    elif state.quarantined > 0:
        status = S.QUARANTINED
    elif state.children:
        status = S.SPLIT
    elif state.written_off_stock > 0:
        status = S.WRITTEN_OFF
    else:
        status = S.REJECTED
    return status


# --- births --------------------------------------------------------------------------------------------------


def _pledged(batch_id: str, p: ev.BatchPledged) -> BatchState:
    return BatchState(
        batch_id=batch_id,
        status=S.PLEDGED,
        pledge_id=p.pledge_id,
        donor_id=p.donor_id,
        item=p.item,
        category=p.category,
        unit=p.unit.value,
        standard=p.standard,
        quantity_pledged=p.quantity,
        warehouse_id=p.warehouse_id,
        designated_recipient_id=p.designated_recipient_id,
        root_batch_id=batch_id,
        location_site_id=None,
        version=1,
    )


def _split_created(batch_id: str, p: ev.BatchCreatedBySplit) -> BatchState:
    allocation = Allocation(p.allocation_id, p.need_id, p.recipient_id, p.quantity)
    return BatchState(
        batch_id=batch_id,
        status=S.ALLOCATED,
        pledge_id=p.pledge_id,
        donor_id=p.donor_id,
        item=p.item,
        category=p.category,
        unit=p.unit.value,
        standard=p.standard,
        quantity_pledged=0,
        warehouse_id=p.site_id,
        designated_recipient_id=p.designated_recipient_id,
        parent_batch_id=p.parent_batch_id,
        root_batch_id=p.root_batch_id,
        accepted=p.quantity,
        inspected=True,
        lot=p.lot,
        expiry=p.expiry,
        on_hand=p.quantity,
        allocations=(allocation,),
        location_site_id=p.site_id,
        version=1,
    )


_BIRTHS: dict[type[ev.Payload], Callable[[str, Any], BatchState]] = {
    ev.BatchPledged: _pledged,
    ev.BatchCreatedBySplit: _split_created,
}


# --- pledge --------------------------------------------------------------------------------------------------


def _amended(state: BatchState, p: ev.PledgeLineAmended) -> BatchState:
    return evolve(
        state,
        quantity_pledged=p.quantity or state.quantity_pledged,
        warehouse_id=p.warehouse_id or state.warehouse_id,
        designated_recipient_id=p.designated_recipient_id or state.designated_recipient_id,
    )


def _cancelled(state: BatchState, p: ev.PledgeLineCancelled) -> BatchState:
    return evolve(state, status=S.CANCELLED)


# --- intake and inspection -----------------------------------------------------------------------------------


def _received(state: BatchState, p: ev.BatchReceived) -> BatchState:
    if p.quantity_received + p.shortfall != state.quantity_pledged:
        raise violation(
            state,
            f"received {p.quantity_received} + shortfall {p.shortfall} must equal the {state.quantity_pledged} "
            f"pledged; record the missing {state.quantity_pledged - p.quantity_received} as shortfall",
        )
    if p.shortfall and not p.shortfall_reason:
        raise violation(state, f"a shortfall of {p.shortfall} needs a shortfall_reason")
    if p.quantity_received == 0:
        raise violation(state, "nothing was received; the donor cancels an undelivered pledge line instead")
    return evolve(
        state,
        status=S.RECEIVED,
        quantity_received=p.quantity_received,
        shortfall=p.shortfall,
        lot=p.lot,
        expiry=p.expiry,
        location_site_id=p.site_id,
    )


def _inspected(state: BatchState, p: ev.BatchInspected) -> BatchState:
    total = p.accepted + p.rejected + p.quarantined
    if total != state.quantity_received:
        raise violation(
            state,
            f"accepted {p.accepted} + rejected {p.rejected} + quarantined {p.quarantined} = {total}, "
            f"but {state.quantity_received} were received; the three must add up to what was received",
        )
    inspected = evolve(
        state, accepted=p.accepted, rejected=p.rejected, quarantined=p.quarantined, on_hand=p.accepted, inspected=True
    )
    return _settled(inspected)


def _quarantine_resolved(state: BatchState, p: ev.QuarantineResolved) -> BatchState:
    resolved = p.released + p.rejected
    if resolved == 0 or resolved > state.quarantined:
        raise violation(
            state,
            f"released {p.released} + rejected {p.rejected} must be between 1 and the {state.quarantined} quarantined",
        )
    return _settled(
        evolve(
            state,
            accepted=state.accepted + p.released,
            on_hand=state.on_hand + p.released,
            rejected=state.rejected + p.rejected,
            quarantined=state.quarantined - resolved,
        )
    )


# --- designation, allocation, picking ------------------------------------------------------------------------


def _redesignated(state: BatchState, p: ev.BatchRedesignated) -> BatchState:
    if state.allocations:
        raise violation(state, "it has open allocations; a batch is redesignated before it is allocated")
    if p.from_recipient_id != state.designated_recipient_id:
        raise violation(
            state,
            f"it is designated to {state.designated_recipient_id}, not {p.from_recipient_id}; "
            "name the current designation",
        )
    record = (p.from_recipient_id, p.to_recipient_id, p.approved_by)
    return evolve(state, designated_recipient_id=p.to_recipient_id, redesignations=(*state.redesignations, record))


def _allocated(state: BatchState, p: ev.BatchAllocated) -> BatchState:
    if state.designated_recipient_id and p.recipient_id != state.designated_recipient_id:
        raise violation(
            state,
            f"designation lock: it is designated to {state.designated_recipient_id} and may go to "
            f"{p.recipient_id} only after a redesignation approved by someone entitled",
        )
    if p.quantity > state.free:
        raise violation(state, f"only {state.free} free of {state.on_hand} on hand; cannot allocate {p.quantity}")
    if state.allocation(p.allocation_id):
        raise violation(state, f"allocation {p.allocation_id} already exists on this batch")
    allocation = Allocation(p.allocation_id, p.need_id, p.recipient_id, p.quantity)
    return _settled(evolve(state, allocations=(*state.allocations, allocation)))


def _require_allocation(state: BatchState, allocation_id: str, quantity: int) -> Allocation:
    allocation = state.allocation(allocation_id)
    if allocation is None:
        open_ids = ", ".join(a.allocation_id for a in state.allocations) or "none"
        raise violation(state, f"no open allocation {allocation_id} (open: {open_ids})")
    if allocation.quantity != quantity:
        raise violation(state, f"allocation {allocation_id} is for {allocation.quantity}, not {quantity}")
    return allocation


def _split(state: BatchState, p: ev.BatchSplit) -> BatchState:
    allocation = _require_allocation(state, p.allocation_id, p.quantity)
    if p.quantity >= state.on_hand:
        raise violation(state, f"a split must leave a remainder; picking all {state.on_hand} picks the whole batch")
    remaining = tuple(a for a in state.allocations if a is not allocation)
    return _settled(
        evolve(
            state,
            on_hand=state.on_hand - p.quantity,
            split_out=state.split_out + p.quantity,
            allocations=remaining,
            children=(*state.children, (p.child_batch_id, p.quantity)),
        )
    )


def _picked(state: BatchState, p: ev.BatchPicked) -> BatchState:
    allocation = _require_allocation(state, p.allocation_id, p.quantity)
    if p.quantity != state.on_hand or len(state.allocations) != 1:
        raise violation(
            state, f"picking {p.quantity} of {state.on_hand} on hand is partial; it splits off a child batch first"
        )
    return evolve(state, status=S.PICKED, allocations=(), picked_allocation=allocation)


def _written_off(state: BatchState, p: ev.BatchWrittenOff) -> BatchState:
    if p.stage is ev.WriteOffStage.TRANSIT:
        return _written_off_in_transit(state, p)
    if state.status is S.PICKED:
        if p.quantity != state.on_hand:
            raise violation(state, f"a picked batch is written off whole ({state.on_hand}), not {p.quantity}")
        return evolve(state, status=S.WRITTEN_OFF, on_hand=0, written_off_stock=state.written_off_stock + p.quantity)
    if p.quantity > state.free:
        raise violation(state, f"only {state.free} free to write off; release allocations first")
    return _settled(
        evolve(state, on_hand=state.on_hand - p.quantity, written_off_stock=state.written_off_stock + p.quantity)
    )


def _written_off_in_transit(state: BatchState, p: ev.BatchWrittenOff) -> BatchState:
    if state.status not in (S.IN_TRANSIT, S.AT_HUB):
        raise violation(state, "a transit write-off needs the batch to be in transit or at a hub")
    if p.quantity > state.in_transit:
        raise violation(state, f"only {state.in_transit} are in transit; cannot write off {p.quantity}")
    in_transit = state.in_transit - p.quantity
    return evolve(
        state,
        in_transit=in_transit,
        written_off_transit=state.written_off_transit + p.quantity,
        status=state.status if in_transit else S.WRITTEN_OFF,
    )


_STEPS: dict[type[ev.Payload], Step] = {
    ev.PledgeLineAmended: _amended,
    ev.PledgeLineCancelled: _cancelled,
    ev.BatchReceived: _received,
    ev.BatchInspected: _inspected,
    ev.QuarantineResolved: _quarantine_resolved,
    ev.BatchRedesignated: _redesignated,
    ev.BatchAllocated: _allocated,
    ev.BatchSplit: _split,
    ev.BatchPicked: _picked,
    ev.BatchWrittenOff: _written_off,
    ev.BatchDispatched: movement.dispatched,
    ev.BatchArrivedAtHub: movement.arrived,
    ev.BatchHandedOver: movement.handed_over,
    ev.BatchDepartedHub: movement.departed,
    ev.BatchDelivered: movement.delivered,
    ev.ReceiptConfirmed: movement.receipt_confirmed,
}

__all__ = ["ALLOWED", "allowed_events", "apply", "fold", "settle", "short_name"]
