"""How a shipment moves: each command becomes one event per batch still moving, each checked by the shared fold.

A shipment moves as one. The order of its movements is checked against `domain.allowed_actions`; the quantities
and the batch-level order are checked by applying every event to its batch's state with `apply`, so those rules
live only in the fold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from services.dispatch.domain import (
    Action,
    LegStatus,
    Progress,
    ShipmentStatus,
    allowed_actions,
    require_allowed,
)
from shared.domain.batch_fold import apply
from shared.domain.batch_state import BatchState, BatchStatus
from shared.domain.errors import Conflict, RuleViolation
from shared.events import batch_events as ev

# --- commands ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Dispatch:
    action: ClassVar[Action] = Action.DISPATCH


@dataclass(frozen=True, slots=True)
class Arrive:
    action: ClassVar[Action] = Action.ARRIVE


@dataclass(frozen=True, slots=True)
class Handover:
    to_carrier: str
    vehicle: str | None = None
    action: ClassVar[Action] = Action.HANDOVER


@dataclass(frozen=True, slots=True)
class Depart:
    action: ClassVar[Action] = Action.DEPART


@dataclass(frozen=True, slots=True)
class Deliver:
    action: ClassVar[Action] = Action.DELIVER


@dataclass(frozen=True, slots=True)
class WriteOff:
    batch_id: str
    quantity: int
    reason: ev.WriteOffReason
    note: str
    action: ClassVar[Action] = Action.WRITE_OFF


Command = Dispatch | Arrive | Handover | Depart | Deliver | WriteOff


@dataclass(frozen=True, slots=True)
class Movement:
    """The outcome of one command: the shipment's new progress and one validated event per batch it touched."""

    progress: Progress
    events: tuple[tuple[str, ev.Payload], ...]


def move(progress: Progress, command: Command, states: Mapping[str, BatchState]) -> Movement:
    """Decide a movement command; raises DomainError (409/422) if the shipment or any batch refuses it."""
    require_allowed(progress, command.action, states)
    if isinstance(command, WriteOff):
        return _write_off(progress, command, states)
    moving = moving_batches(states)
    if not moving:
        raise Conflict(
            f"every batch of shipment {progress.shipment_id} was written off; there is nothing left to move",
            current_state=progress.status.value,
            allowed=[],
        )
    after, build = _STEPS[type(command)](progress, command)
    events = tuple((batch_id, _validated(state, build(state))) for batch_id, state in moving.items())
    return Movement(after, events)


def moving_batches(states: Mapping[str, BatchState]) -> dict[str, BatchState]:
    """Batches written off whole (at the warehouse or in transit) stay behind; the others move together."""
    return {batch_id: state for batch_id, state in states.items() if state.status is not BatchStatus.WRITTEN_OFF}


def _validated(state: BatchState, payload: ev.Payload) -> ev.Payload:
    apply(state, payload, state.batch_id)
    return payload


EventFor = Callable[[BatchState], ev.Payload]
Step = Callable[[Progress, Any], tuple[Progress, EventFor]]


def _dispatch(progress: Progress, _: Dispatch) -> tuple[Progress, EventFor]:
    leg = progress.legs[0]
    after = replace(
        progress, status=ShipmentStatus.IN_TRANSIT, current_leg_no=1, carrier=leg.carrier, vehicle=leg.vehicle
    )

    def event(state: BatchState) -> ev.Payload:
        return ev.BatchDispatched(
            shipment_id=progress.shipment_id,
            leg_no=1,
            from_site_id=leg.from_site_id,
            to_site_id=leg.to_site_id,
            carrier=leg.carrier,
            vehicle=leg.vehicle,
            quantity=state.on_hand,
        )

    return after, event


def _arrive(progress: Progress, _: Arrive) -> tuple[Progress, EventFor]:
    leg = progress.current_leg
    after = replace(progress, status=ShipmentStatus.AT_HUB, handed_over=False)
    payload = ev.BatchArrivedAtHub(shipment_id=progress.shipment_id, leg_no=leg.leg_no, hub_site_id=leg.to_site_id)
    return after, lambda _state: payload


def _handover(progress: Progress, command: Handover) -> tuple[Progress, EventFor]:
    if command.to_carrier == progress.carrier:
        raise RuleViolation(
            f"shipment {progress.shipment_id} is already held by {progress.carrier}; hand it over to another carrier",
            current_state=progress.status.value,
            allowed=[a.value for a in allowed_actions(progress)],
        )
    after = replace(progress, carrier=command.to_carrier, vehicle=command.vehicle, handed_over=True)
    payload = ev.BatchHandedOver(
        shipment_id=progress.shipment_id,
        hub_site_id=progress.current_leg.to_site_id,
        from_carrier=progress.carrier or progress.current_leg.carrier,
        to_carrier=command.to_carrier,
        vehicle=command.vehicle,
    )
    return after, lambda _state: payload


def _depart(progress: Progress, _: Depart) -> tuple[Progress, EventFor]:
    """Onto the next leg with its planned carrier, unless a handover at this hub put the goods with another."""
    leg = progress.legs[progress.current_leg_no]
    carrier, vehicle = (progress.carrier, progress.vehicle) if progress.handed_over else (leg.carrier, leg.vehicle)
    after = replace(
        progress,
        status=ShipmentStatus.IN_TRANSIT,
        current_leg_no=leg.leg_no,
        carrier=carrier,
        vehicle=vehicle,
        handed_over=False,
    )
    payload = ev.BatchDepartedHub(
        shipment_id=progress.shipment_id,
        leg_no=leg.leg_no,
        hub_site_id=leg.from_site_id,
        to_site_id=leg.to_site_id,
        carrier=carrier or leg.carrier,
        vehicle=vehicle,
    )
    return after, lambda _state: payload


def _deliver(progress: Progress, _: Deliver) -> tuple[Progress, EventFor]:
    after = replace(progress, status=ShipmentStatus.DELIVERED)

    def event(state: BatchState) -> ev.Payload:
        return ev.BatchDelivered(
            shipment_id=progress.shipment_id,
            site_id=progress.destination_site_id,
            recipient_id=progress.recipient_id,
            quantity=state.in_transit,
        )

    return after, event


def _write_off(progress: Progress, command: WriteOff, states: Mapping[str, BatchState]) -> Movement:
    state = states.get(command.batch_id)
    if state is None:
        raise RuleViolation(
            f"batch {command.batch_id} is not on shipment {progress.shipment_id}; "
            f"its batches are {', '.join(states) or 'none'}"
        )
    payload = ev.BatchWrittenOff(
        quantity=command.quantity,
        reason=command.reason,
        stage=ev.WriteOffStage.TRANSIT,
        note=command.note,
        shipment_id=progress.shipment_id,
    )
    after_state = apply(state, payload, state.batch_id)
    left = moving_batches({**states, command.batch_id: after_state})
    after = progress if left else replace(progress, status=ShipmentStatus.WRITTEN_OFF)
    return Movement(after, ((command.batch_id, payload),))


_STEPS: dict[type[Any], Step] = {
    Dispatch: _dispatch,
    Arrive: _arrive,
    Handover: _handover,
    Depart: _depart,
    Deliver: _deliver,
}


# --- what the legs table records ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LegChange:
    leg_no: int
    status: LegStatus
    carrier: str | None = None
    vehicle: str | None = None

    @property
    def departed(self) -> bool:
        return self.status is LegStatus.IN_TRANSIT


def leg_change(before: Progress, after: Progress) -> LegChange | None:
    """A leg starts when the shipment goes in transit on it, and ends when it arrives or is delivered."""
    if after.status is before.status and after.current_leg_no == before.current_leg_no:
        return None
    if after.status is ShipmentStatus.IN_TRANSIT:
        return LegChange(after.current_leg_no, LegStatus.IN_TRANSIT, after.carrier, after.vehicle)
    if after.status is ShipmentStatus.AT_HUB:
        return LegChange(after.current_leg_no, LegStatus.ARRIVED)
    if after.status is ShipmentStatus.DELIVERED:
        return LegChange(after.current_leg_no, LegStatus.DELIVERED)
    return None
