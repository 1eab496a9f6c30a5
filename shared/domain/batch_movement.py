"""The fold's steps once a batch leaves the warehouse: transport legs, hubs, delivery and the signed receipt."""

from __future__ import annotations

from shared.domain.batch_state import BatchState, BatchStatus, evolve
from shared.domain.transitions import violation
from shared.events import batch_events as ev

S = BatchStatus


def dispatched(state: BatchState, p: ev.BatchDispatched) -> BatchState:
    if p.quantity != state.on_hand:
        raise violation(state, f"a picked batch ships whole: {state.on_hand}, not {p.quantity}")
    return evolve(
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
        raise violation(state, f"it travels on shipment {state.shipment_id}, not {shipment_id}")


def arrived(state: BatchState, p: ev.BatchArrivedAtHub) -> BatchState:
    _require_shipment(state, p.shipment_id)
    return evolve(state, status=S.AT_HUB, location_site_id=p.hub_site_id, destination_site_id=None)


def handed_over(state: BatchState, p: ev.BatchHandedOver) -> BatchState:
    _require_shipment(state, p.shipment_id)
    if p.from_carrier != state.carrier:
        raise violation(state, f"it is held by carrier {state.carrier}, not {p.from_carrier}")
    return evolve(state, carrier=p.to_carrier)


def departed(state: BatchState, p: ev.BatchDepartedHub) -> BatchState:
    _require_shipment(state, p.shipment_id)
    return evolve(
        state, status=S.IN_TRANSIT, location_site_id=None, destination_site_id=p.to_site_id, carrier=p.carrier
    )


def delivered(state: BatchState, p: ev.BatchDelivered) -> BatchState:
    _require_shipment(state, p.shipment_id)
    if p.quantity != state.in_transit:
        raise violation(
            state, f"{state.in_transit} are in transit; delivered must be {state.in_transit}, not {p.quantity}"
        )
    expected = state.allocated_recipient_id
    if expected and p.recipient_id != expected:
        raise violation(state, f"it is allocated to {expected}; it cannot be delivered to {p.recipient_id}")
    return evolve(
        state,
        status=S.DELIVERED,
        in_transit=0,
        delivered=p.quantity,
        location_site_id=p.site_id,
        destination_site_id=None,
        delivered_to_recipient_id=p.recipient_id,
    )


def receipt_confirmed(state: BatchState, p: ev.ReceiptConfirmed) -> BatchState:
    if p.recipient_id != state.delivered_to_recipient_id:
        raise violation(state, f"it was delivered to {state.delivered_to_recipient_id}, not {p.recipient_id}")
    counted = p.quantity_received + p.quantity_damaged
    if counted > state.delivered:
        raise violation(
            state,
            f"received {p.quantity_received} + damaged {p.quantity_damaged} exceed the {state.delivered} delivered",
        )
    if (counted != state.delivered or p.quantity_damaged) and not p.discrepancy_reason:
        raise violation(
            state,
            f"{state.delivered} were delivered but {p.quantity_received} received in good order; "
            "give a discrepancy_reason",
        )
    return evolve(
        state, status=S.CONFIRMED, confirmed_received=p.quantity_received, confirmed_damaged=p.quantity_damaged
    )
