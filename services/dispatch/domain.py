"""The dispatch service's shipment rules: pure checks of a route and of the batches on it, and the order in
which a shipment may dispatch, arrive, hand over, depart and deliver.

These are the rules the batch fold cannot know, because it sees one batch at a time. How each command becomes
batch events, checked by the fold, is in `movement.py`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise

from shared.domain.batch_state import BatchState, BatchStatus
from shared.domain.errors import IllegalTransition, RuleViolation
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


def current_site(progress: Progress) -> str | None:
    """Where the goods are standing now; None while they are on the road or gone."""
    if progress.status is ShipmentStatus.PLANNED:
        return progress.legs[0].from_site_id
    if progress.status is ShipmentStatus.AT_HUB:
        return progress.current_leg.to_site_id
    if progress.status is ShipmentStatus.DELIVERED:
        return progress.destination_site_id
    return None
