"""`fold(events) -> BatchState`: the one definition of what a batch's events mean.

Every service and the auditor use this same pure function, so that they can never disagree about a batch. Each
step either returns the next state or raises a DomainError naming the current state and what is allowed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any, TypeVar

from shared.domain.batch_state import Allocation, BatchState, BatchStatus
from shared.domain.errors import IllegalTransition, RuleViolation
from shared.events import batch_events as ev

S = BatchStatus
P = TypeVar("P", bound=ev.Payload)
Step = Callable[[BatchState, Any], BatchState]

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


def fold(payloads: Iterable[ev.Payload], batch_id: str = "") -> BatchState | None:
    state: BatchState | None = None
    for payload in payloads:
        state = apply(state, payload, batch_id)
    return state


def apply(state: BatchState | None, payload: ev.Payload, batch_id: str = "") -> BatchState:
    name = short_name(payload.event_type)
    current = state.status if state else None
    if name not in ALLOWED[current]:
        raise _illegal(state, name)
    if state is None:
        return _BIRTHS[type(payload)](batch_id, payload)
    step = _STEPS[type(payload)]
    return replace(step(state, payload), version=state.version + 1)


def allowed_events(state: BatchState | None) -> list[str]:
    return list(ALLOWED[state.status if state else None])


def _illegal(state: BatchState | None, name: str) -> IllegalTransition:
    current = state.status.value if state else "no batch yet"
    allowed = allowed_events(state)
    who = f"batch {state.batch_id}" if state else "this batch"
    return IllegalTransition(
        f"{who} is {current}; '{name}' is not allowed there. Allowed next: {', '.join(allowed) or 'nothing (final)'}",
        current_state=current,
        allowed=allowed,
    )


def _violation(state: BatchState, message: str) -> RuleViolation:
    return RuleViolation(
        f"batch {state.batch_id} ({state.status.value}): {message}",
        current_state=state.status.value,
        allowed=allowed_events(state),
    )


def settle(state: BatchState) -> BatchState:
    """The status of a batch that is still in a warehouse follows from its quantities."""
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
    return replace(state, status=status)


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
    return replace(
        state,
        quantity_pledged=p.quantity or state.quantity_pledged,
        warehouse_id=p.warehouse_id or state.warehouse_id,
        designated_recipient_id=p.designated_recipient_id or state.designated_recipient_id,
    )


def _cancelled(state: BatchState, p: ev.PledgeLineCancelled) -> BatchState:
    return replace(state, status=S.CANCELLED)


# --- intake and inspection -----------------------------------------------------------------------------------


def _received(state: BatchState, p: ev.BatchReceived) -> BatchState:
    if p.quantity_received + p.shortfall != state.quantity_pledged:
        raise _violation(
            state,
            f"received {p.quantity_received} + shortfall {p.shortfall} must equal the {state.quantity_pledged} "
            f"pledged; record the missing {state.quantity_pledged - p.quantity_received} as shortfall",
        )
    if p.shortfall and not p.shortfall_reason:
        raise _violation(state, f"a shortfall of {p.shortfall} needs a shortfall_reason")
    if p.quantity_received == 0:
        raise _violation(state, "nothing was received; the donor cancels an undelivered pledge line instead")
    return replace(
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
        raise _violation(
            state,
            f"accepted {p.accepted} + rejected {p.rejected} + quarantined {p.quarantined} = {total}, "
            f"but {state.quantity_received} were received; the three must add up to what was received",
        )
    inspected = replace(
        state, accepted=p.accepted, rejected=p.rejected, quarantined=p.quarantined, on_hand=p.accepted, inspected=True
    )
    return settle(inspected)


def _quarantine_resolved(state: BatchState, p: ev.QuarantineResolved) -> BatchState:
    resolved = p.released + p.rejected
    if resolved == 0 or resolved > state.quarantined:
        raise _violation(
            state,
            f"released {p.released} + rejected {p.rejected} must be between 1 and the {state.quarantined} quarantined",
        )
    return settle(
        replace(
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
        raise _violation(state, "it has open allocations; a batch is redesignated before it is allocated")
    if p.from_recipient_id != state.designated_recipient_id:
        raise _violation(
            state,
            f"it is designated to {state.designated_recipient_id}, not {p.from_recipient_id}; "
            "name the current designation",
        )
    record = (p.from_recipient_id, p.to_recipient_id, p.approved_by)
    return replace(state, designated_recipient_id=p.to_recipient_id, redesignations=(*state.redesignations, record))


def _allocated(state: BatchState, p: ev.BatchAllocated) -> BatchState:
    if state.designated_recipient_id and p.recipient_id != state.designated_recipient_id:
        raise _violation(
            state,
            f"designation lock: it is designated to {state.designated_recipient_id} and may go to "
            f"{p.recipient_id} only after a redesignation approved by someone entitled",
        )
    if p.quantity > state.free:
        raise _violation(state, f"only {state.free} free of {state.on_hand} on hand; cannot allocate {p.quantity}")
    if state.allocation(p.allocation_id):
        raise _violation(state, f"allocation {p.allocation_id} already exists on this batch")
    allocation = Allocation(p.allocation_id, p.need_id, p.recipient_id, p.quantity)
    return settle(replace(state, allocations=(*state.allocations, allocation)))


def _require_allocation(state: BatchState, allocation_id: str, quantity: int) -> Allocation:
    allocation = state.allocation(allocation_id)
    if allocation is None:
        open_ids = ", ".join(a.allocation_id for a in state.allocations) or "none"
        raise _violation(state, f"no open allocation {allocation_id} (open: {open_ids})")
    if allocation.quantity != quantity:
        raise _violation(state, f"allocation {allocation_id} is for {allocation.quantity}, not {quantity}")
    return allocation


def _split(state: BatchState, p: ev.BatchSplit) -> BatchState:
    allocation = _require_allocation(state, p.allocation_id, p.quantity)
    if p.quantity >= state.on_hand:
        raise _violation(state, f"a split must leave a remainder; picking all {state.on_hand} picks the whole batch")
    remaining = tuple(a for a in state.allocations if a is not allocation)
    return settle(
        replace(
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
        raise _violation(
            state, f"picking {p.quantity} of {state.on_hand} on hand is partial; it splits off a child batch first"
        )
    return replace(state, status=S.PICKED, allocations=(), picked_allocation=allocation)


def _written_off(state: BatchState, p: ev.BatchWrittenOff) -> BatchState:
    if p.stage is ev.WriteOffStage.TRANSIT:
        return _written_off_in_transit(state, p)
    if state.status is S.PICKED:
        if p.quantity != state.on_hand:
            raise _violation(state, f"a picked batch is written off whole ({state.on_hand}), not {p.quantity}")
        return replace(state, status=S.WRITTEN_OFF, on_hand=0, written_off_stock=state.written_off_stock + p.quantity)
    if p.quantity > state.free:
        raise _violation(state, f"only {state.free} free to write off; release allocations first")
    return settle(
        replace(state, on_hand=state.on_hand - p.quantity, written_off_stock=state.written_off_stock + p.quantity)
    )


def _written_off_in_transit(state: BatchState, p: ev.BatchWrittenOff) -> BatchState:
    if state.status not in (S.IN_TRANSIT, S.AT_HUB):
        raise _violation(state, "a transit write-off needs the batch to be in transit or at a hub")
    if p.quantity > state.in_transit:
        raise _violation(state, f"only {state.in_transit} are in transit; cannot write off {p.quantity}")
    in_transit = state.in_transit - p.quantity
    return replace(
        state,
        in_transit=in_transit,
        written_off_transit=state.written_off_transit + p.quantity,
        status=state.status if in_transit else S.WRITTEN_OFF,
    )


# --- movement ------------------------------------------------------------------------------------------------


def _dispatched(state: BatchState, p: ev.BatchDispatched) -> BatchState:
    if p.quantity != state.on_hand:
        raise _violation(state, f"a picked batch ships whole: {state.on_hand}, not {p.quantity}")
    return replace(
        state,
        status=S.IN_TRANSIT,
        on_hand=0,
        dispatched=p.quantity,
        in_transit=p.quantity,
        shipment_id=p.shipment_id,
        carrier=p.carrier,
        location_site_id=None,
        destination_site_id=p.to_site_id,
    )


def _require_shipment(state: BatchState, shipment_id: str) -> None:
    if shipment_id != state.shipment_id:
        raise _violation(state, f"it travels on shipment {state.shipment_id}, not {shipment_id}")


def _arrived(state: BatchState, p: ev.BatchArrivedAtHub) -> BatchState:
    _require_shipment(state, p.shipment_id)
    return replace(state, status=S.AT_HUB, location_site_id=p.hub_site_id, destination_site_id=None)


def _handed_over(state: BatchState, p: ev.BatchHandedOver) -> BatchState:
    _require_shipment(state, p.shipment_id)
    if p.from_carrier != state.carrier:
        raise _violation(state, f"it is held by carrier {state.carrier}, not {p.from_carrier}")
    return replace(state, carrier=p.to_carrier)


def _departed(state: BatchState, p: ev.BatchDepartedHub) -> BatchState:
    _require_shipment(state, p.shipment_id)
    return replace(
        state, status=S.IN_TRANSIT, location_site_id=None, destination_site_id=p.to_site_id, carrier=p.carrier
    )


def _delivered(state: BatchState, p: ev.BatchDelivered) -> BatchState:
    _require_shipment(state, p.shipment_id)
    if p.quantity != state.in_transit:
        raise _violation(
            state, f"{state.in_transit} are in transit; delivered must be {state.in_transit}, not {p.quantity}"
        )
    expected = state.allocated_recipient_id
    if expected and p.recipient_id != expected:
        raise _violation(state, f"it is allocated to {expected}; it cannot be delivered to {p.recipient_id}")
    return replace(
        state,
        status=S.DELIVERED,
        in_transit=0,
        delivered=p.quantity,
        location_site_id=p.site_id,
        destination_site_id=None,
        delivered_to_recipient_id=p.recipient_id,
    )


def _receipt_confirmed(state: BatchState, p: ev.ReceiptConfirmed) -> BatchState:
    if p.recipient_id != state.delivered_to_recipient_id:
        raise _violation(state, f"it was delivered to {state.delivered_to_recipient_id}, not {p.recipient_id}")
    counted = p.quantity_received + p.quantity_damaged
    if counted > state.delivered:
        raise _violation(
            state,
            f"received {p.quantity_received} + damaged {p.quantity_damaged} exceed the {state.delivered} delivered",
        )
    if (counted != state.delivered or p.quantity_damaged) and not p.discrepancy_reason:
        raise _violation(
            state,
            f"{state.delivered} were delivered but {p.quantity_received} received in good order; "
            "give a discrepancy_reason",
        )
    return replace(
        state, status=S.CONFIRMED, confirmed_received=p.quantity_received, confirmed_damaged=p.quantity_damaged
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
    ev.BatchDispatched: _dispatched,
    ev.BatchArrivedAtHub: _arrived,
    ev.BatchHandedOver: _handed_over,
    ev.BatchDepartedHub: _departed,
    ev.BatchDelivered: _delivered,
    ev.ReceiptConfirmed: _receipt_confirmed,
}
