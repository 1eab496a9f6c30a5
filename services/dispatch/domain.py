"""The dispatch service's decisions: pure functions that check a route, the batches on it, and each movement.

A shipment moves as one: every movement command turns into one batch event per batch that is still moving, and
each event is validated by applying it to that batch's state with the shared fold, so the quantity rules live in
one place. What the fold cannot know, because it sees one batch at a time, is decided here: that the legs form a
route to the recipient, and in which order a shipment may dispatch, arrive, hand over, depart and deliver.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from itertools import pairwise
from typing import Any, ClassVar

from shared.domain.batch_fold import apply
from shared.domain.batch_state import BatchState, BatchStatus
from shared.domain.errors import Conflict, IllegalTransition, RuleViolation
from shared.events import batch_events as ev
from shared.events.reference_events import ShipmentLeg, SiteKind


class ShipmentStatus(StrEnum):
    PLANNED = "planned"
    IN_TRANSIT = "in_transit"
    AT_HUB = "at_hub"
    DELIVERED = "delivered"
    # Every batch was lost or damaged in transit: nothing is left to move, so the shipment is closed.
    WRITTEN_OFF = "written_off"


OPEN_STATUSES = (ShipmentStatus.PLANNED, ShipmentStatus.IN_TRANSIT, ShipmentStatus.AT_HUB)


class Action(StrEnum):
    DISPATCH = "dispatch"
    ARRIVE = "arrive"
    HANDOVER = "handover"
    DEPART = "depart"
    DELIVER = "deliver"
    WRITE_OFF = "write-off"


class LegStatus(StrEnum):
    PENDING = "pending"
    IN_TRANSIT = "in_transit"
    ARRIVED = "arrived"
    DELIVERED = "delivered"


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a shipment is on its route. `current_leg_no` is the leg it is on, or has just arrived from."""

    shipment_id: str
    recipient_id: str
    status: ShipmentStatus
    legs: tuple[ShipmentLeg, ...]
    current_leg_no: int = 1
    carrier: str | None = None
    vehicle: str | None = None
    handed_over: bool = False

    @property
    def current_leg(self) -> ShipmentLeg:
        return self.legs[self.current_leg_no - 1]

    @property
    def on_last_leg(self) -> bool:
        return self.current_leg_no == len(self.legs)

    @property
    def destination_site_id(self) -> str:
        return self.legs[-1].to_site_id


# --- the route ---------------------------------------------------------------------------------------------


def number_legs(legs: Sequence[tuple[str, str, str, str | None]]) -> tuple[ShipmentLeg, ...]:
    """Legs are numbered by their order in the request: (from, to, carrier, vehicle) -> leg 1, 2, ..."""
    return tuple(
        ShipmentLeg(leg_no=number, from_site_id=origin, to_site_id=to, carrier=carrier, vehicle=vehicle)
        for number, (origin, to, carrier, vehicle) in enumerate(legs, start=1)
    )


def check_route(legs: Sequence[ShipmentLeg], sites: Mapping[str, SiteKind], recipient_site_id: str) -> None:
    """A route leaves a warehouse, stops only at relay hubs, and ends at the recipient's facility."""
    _check_sites_known(legs, sites)
    problems = [
        *_legs_that_go_nowhere(legs),
        *_legs_that_do_not_chain(legs),
        *_stops_of_the_wrong_kind(legs, sites),
        *_end_of_route(legs, recipient_site_id),
        *_sites_visited_twice(legs),
    ]
    if problems:
        raise RuleViolation("the route is not valid: " + "; ".join(problems))


def _check_sites_known(legs: Sequence[ShipmentLeg], sites: Mapping[str, SiteKind]) -> None:
    named = dict.fromkeys(site for leg in legs for site in (leg.from_site_id, leg.to_site_id))
    unknown = [site for site in named if site not in sites]
    if unknown:
        raise RuleViolation(
            f"unknown site(s): {', '.join(unknown)}. Dispatch only routes through sites it has learnt from "
            "site.registered events; check the ids, or register the site first"
        )


def _legs_that_go_nowhere(legs: Sequence[ShipmentLeg]) -> list[str]:
    return [
        f"leg {leg.leg_no} starts and ends at {leg.from_site_id}" for leg in legs if leg.from_site_id == leg.to_site_id
    ]


def _legs_that_do_not_chain(legs: Sequence[ShipmentLeg]) -> list[str]:
    return [
        f"leg {leg.leg_no} starts at {leg.from_site_id} but leg {before.leg_no} ends at {before.to_site_id}; "
        "each leg must start where the previous one ends"
        for before, leg in pairwise(legs)
        if leg.from_site_id != before.to_site_id
    ]


def _stops_of_the_wrong_kind(legs: Sequence[ShipmentLeg], sites: Mapping[str, SiteKind]) -> list[str]:
    problems = []
    origin = legs[0].from_site_id
    if sites[origin] is not SiteKind.WAREHOUSE:
        problems.append(f"leg 1 must start at a warehouse, but {origin} is a {sites[origin].value}")
    for leg in legs[:-1]:
        if sites[leg.to_site_id] is not SiteKind.RELAY_HUB:
            problems.append(
                f"leg {leg.leg_no} ends at {leg.to_site_id}, a {sites[leg.to_site_id].value}; "
                "a shipment stops on the way only at relay hubs"
            )
    return problems


def _end_of_route(legs: Sequence[ShipmentLeg], recipient_site_id: str) -> list[str]:
    last = legs[-1]
    if last.to_site_id == recipient_site_id:
        return []
    return [f"the last leg ends at {last.to_site_id}, but the recipient's facility is {recipient_site_id}"]


def _sites_visited_twice(legs: Sequence[ShipmentLeg]) -> list[str]:
    stops = Counter([legs[0].from_site_id, *(leg.to_site_id for leg in legs)])
    return [f"the route visits {site} {count} times" for site, count in stops.items() if count > 1]


# --- the batches -------------------------------------------------------------------------------------------


def check_batches(
    batch_ids: Sequence[str], states: Mapping[str, BatchState | None], recipient_id: str, origin_site_id: str
) -> None:
    """Every batch is picked for this recipient and waits at the warehouse the route starts from."""
    duplicates = sorted(batch_id for batch_id, count in Counter(batch_ids).items() if count > 1)
    if duplicates:
        raise RuleViolation(f"batch_ids lists {', '.join(duplicates)} more than once; name each batch once")
    problems = [
        problem
        for batch_id in batch_ids
        if (problem := _batch_problem(batch_id, states.get(batch_id), recipient_id, origin_site_id))
    ]
    if problems:
        raise RuleViolation("these batches cannot be shipped: " + "; ".join(problems))


def _batch_problem(batch_id: str, state: BatchState | None, recipient_id: str, origin_site_id: str) -> str | None:
    if state is None:
        return f"batch {batch_id} is not known to dispatch (check the id, or wait until its events have arrived)"
    if state.status is not BatchStatus.PICKED:
        return f"batch {batch_id} is {state.status.value}; only picked batches can be shipped, pick it first"
    allocated_to = state.allocated_recipient_id
    if allocated_to != recipient_id:
        return f"batch {batch_id} is allocated to {allocated_to}, not {recipient_id}; ship it to {allocated_to}"
    if state.location_site_id != origin_site_id:
        return f"batch {batch_id} is at {state.location_site_id}, but leg 1 starts at {origin_site_id}"
    return None


# --- what may happen next ----------------------------------------------------------------------------------


def allowed_actions(progress: Progress) -> list[Action]:
    if progress.status is ShipmentStatus.PLANNED:
        return [Action.DISPATCH]
    if progress.status is ShipmentStatus.IN_TRANSIT:
        return [Action.DELIVER if progress.on_last_leg else Action.ARRIVE, Action.WRITE_OFF]
    if progress.status is ShipmentStatus.AT_HUB:
        return [Action.HANDOVER, Action.DEPART, Action.WRITE_OFF]
    return []


def require_allowed(progress: Progress, action: Action, states: Mapping[str, BatchState]) -> None:
    """Refuse an out-of-order command with 409, naming where the shipment and its batches are and what is next."""
    allowed = allowed_actions(progress)
    if action in allowed:
        return
    batches = ", ".join(f"{batch_id} {state.status.value}" for batch_id, state in states.items()) or "none"
    hint = _hint(progress, action)
    raise IllegalTransition(
        f"shipment {progress.shipment_id} is {describe(progress)}; its batches: {batches}. "
        f"'{action.value}' is not allowed now{hint}. Allowed next: {', '.join(allowed) or 'nothing (final)'}",
        current_state=progress.status.value,
        allowed=[a.value for a in allowed],
    )


def describe(progress: Progress) -> str:
    leg = progress.current_leg
    if progress.status is ShipmentStatus.PLANNED:
        return f"planned, waiting at {leg.from_site_id}"
    if progress.status is ShipmentStatus.IN_TRANSIT:
        return f"in_transit on leg {leg.leg_no} ({leg.from_site_id} -> {leg.to_site_id}) with {progress.carrier}"
    if progress.status is ShipmentStatus.AT_HUB:
        return f"at_hub {leg.to_site_id} after leg {leg.leg_no}, held by {progress.carrier}"
    return progress.status.value


def _hint(progress: Progress, action: Action) -> str:
    in_transit = progress.status is ShipmentStatus.IN_TRANSIT
    if action is Action.ARRIVE and in_transit and progress.on_last_leg:
        return f" (leg {progress.current_leg_no} ends at the recipient's facility: use deliver)"
    if action is Action.DELIVER and in_transit and not progress.on_last_leg:
        return f" (leg {progress.current_leg_no} ends at relay hub {progress.current_leg.to_site_id}: arrive first)"
    return ""


def acting_sites(progress: Progress, action: Action) -> tuple[str, ...]:
    """The sites whose dispatchers may give the command: where the goods are, or are about to arrive."""
    leg = progress.current_leg
    if action is Action.DISPATCH:
        return (leg.from_site_id,)
    if action in (Action.ARRIVE, Action.HANDOVER, Action.DEPART):
        return (leg.to_site_id,)
    if progress.status is ShipmentStatus.AT_HUB:
        return (leg.to_site_id,)
    return (leg.from_site_id, leg.to_site_id)


# --- movement ----------------------------------------------------------------------------------------------


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


def current_site(progress: Progress) -> str | None:
    """Where the goods are standing now; None while they are on the road or gone."""
    if progress.status is ShipmentStatus.PLANNED:
        return progress.legs[0].from_site_id
    if progress.status is ShipmentStatus.AT_HUB:
        return progress.current_leg.to_site_id
    if progress.status is ShipmentStatus.DELIVERED:
        return progress.destination_site_id
    return None
