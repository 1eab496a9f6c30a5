"""Pure tests of dispatch's decisions: route checks, batch checks, the order of movements, and the events they make.

Batch states are built with the shared fold from real payloads, and every movement is applied back through the
fold, so these tests hold dispatch to the same rules the auditor replays.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from services.dispatch import domain, movement
from services.dispatch.domain import Action, LegStatus, Progress, ShipmentStatus
from shared.domain.batch_fold import apply, fold
from shared.domain.batch_state import BatchState, BatchStatus
from shared.domain.errors import Conflict, IllegalTransition, RuleViolation
from shared.events import batch_events as ev
from shared.events.reference_events import ShipmentLeg, SiteKind

WAREHOUSE = "wh-wuhan-1"
HUB = "hub-xiantao"
HUB_2 = "hub-wuhan-north"
FACILITY = "site-jinyintan"
RECIPIENT = "jinyintan-hospital"

SITES: dict[str, SiteKind] = {
    WAREHOUSE: SiteKind.WAREHOUSE,
    "wh-wuhan-2": SiteKind.WAREHOUSE,
    HUB: SiteKind.RELAY_HUB,
    HUB_2: SiteKind.RELAY_HUB,
    FACILITY: SiteKind.RECIPIENT_FACILITY,
    "site-tongji": SiteKind.RECIPIENT_FACILITY,
}


def legs(*route: tuple[str, str], carriers: tuple[str, ...] = ()) -> tuple[ShipmentLeg, ...]:
    names = carriers or tuple(f"carrier-{n}" for n in range(1, len(route) + 1))
    return domain.number_legs([(a, b, names[n], f"truck-{n + 1}") for n, (a, b) in enumerate(route)])


VIA_HUB = legs((WAREHOUSE, HUB), (HUB, FACILITY), carriers=("SF Express", "JD Logistics"))


def picked_batch(
    batch_id: str = "b-1", quantity: int = 100, recipient: str = RECIPIENT, site: str = WAREHOUSE
) -> BatchState:
    payloads: list[ev.Payload] = [
        ev.BatchPledged(
            pledge_id="p-1",
            donor_id="d-1",
            line_no=1,
            item="n95-mask",
            quantity=quantity,
            unit=ev.Unit.PIECE,
            warehouse_id=site,
        ),
        ev.BatchReceived(site_id=site, quantity_received=quantity),
        ev.BatchInspected(inspector="qc", standard_checked="N95", accepted=quantity, rejected=0, quarantined=0),
        ev.BatchAllocated(allocation_id="a-1", need_id="n-1", recipient_id=recipient, quantity=quantity),
        ev.BatchPicked(allocation_id="a-1", quantity=quantity, picker="op"),
    ]
    state = fold(payloads, batch_id)
    assert state is not None and state.status is BatchStatus.PICKED
    return state


def planned(route: tuple[ShipmentLeg, ...] = VIA_HUB) -> Progress:
    return Progress(shipment_id="shp-1", recipient_id=RECIPIENT, status=ShipmentStatus.PLANNED, legs=route)


def run(
    progress: Progress, command: movement.Command, states: Mapping[str, BatchState]
) -> tuple[Progress, dict[str, BatchState], list[ev.Payload]]:
    """Decide, then apply the events through the fold, as the event store and batch view would."""
    moved = movement.move(progress, command, states)
    after = dict(states)
    for batch_id, payload in moved.events:
        after[batch_id] = apply(after[batch_id], payload, batch_id)
    return moved.progress, after, [payload for _, payload in moved.events]


# --- route -------------------------------------------------------------------------------------------------


def test_legs_are_numbered_in_request_order() -> None:
    assert [(leg.leg_no, leg.from_site_id, leg.to_site_id) for leg in VIA_HUB] == [
        (1, WAREHOUSE, HUB),
        (2, HUB, FACILITY),
    ]


@pytest.mark.parametrize(
    "route",
    [legs((WAREHOUSE, FACILITY)), VIA_HUB, legs((WAREHOUSE, HUB), (HUB, HUB_2), (HUB_2, FACILITY))],
    ids=["direct", "one-hub", "two-hubs"],
)
def test_a_route_from_warehouse_through_hubs_to_the_facility_is_accepted(route: tuple[ShipmentLeg, ...]) -> None:
    domain.check_route(route, SITES, FACILITY)


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        (legs((WAREHOUSE, HUB), (HUB_2, FACILITY)), "leg 2 starts at hub-wuhan-north but leg 1 ends at hub-xiantao"),
        (legs((HUB, FACILITY)), "leg 1 must start at a warehouse, but hub-xiantao is a relay_hub"),
        (legs((WAREHOUSE, "wh-wuhan-2"), ("wh-wuhan-2", FACILITY)), "leg 1 ends at wh-wuhan-2, a warehouse"),
        (legs((WAREHOUSE, HUB), (HUB, "site-tongji")), "the last leg ends at site-tongji, but the recipient's"),
        (legs((WAREHOUSE, WAREHOUSE)), f"leg 1 starts and ends at {WAREHOUSE}"),
        (legs((WAREHOUSE, HUB), (HUB, HUB_2), (HUB_2, HUB), (HUB, FACILITY)), "visits hub-xiantao 2 times"),
    ],
    ids=["not-chained", "starts-at-hub", "stops-at-warehouse", "wrong-end", "goes-nowhere", "loop"],
)
def test_a_bad_route_is_refused_saying_what_is_wrong(route: tuple[ShipmentLeg, ...], expected: str) -> None:
    with pytest.raises(RuleViolation) as refused:
        domain.check_route(route, SITES, FACILITY)
    assert expected in refused.value.message
    assert refused.value.status_code == 422


def test_unknown_sites_are_named_before_anything_else_is_checked() -> None:
    with pytest.raises(RuleViolation) as refused:
        domain.check_route(legs((WAREHOUSE, "hub-nowhere"), ("hub-nowhere", "site-mars")), SITES, FACILITY)
    assert "unknown site(s): hub-nowhere, site-mars" in refused.value.message


def test_every_problem_of_a_route_is_reported_at_once() -> None:
    with pytest.raises(RuleViolation) as refused:
        domain.check_route(legs((HUB, WAREHOUSE), (HUB_2, "site-tongji")), SITES, FACILITY)
    message = refused.value.message
    assert "leg 2 starts at" in message and "must start at a warehouse" in message and "site-tongji" in message


# --- batches -----------------------------------------------------------------------------------------------


def test_picked_batches_for_the_recipient_at_the_origin_may_ship() -> None:
    states = {"b-1": picked_batch("b-1"), "b-2": picked_batch("b-2")}
    domain.check_batches(["b-1", "b-2"], states, RECIPIENT, WAREHOUSE)


def test_each_unshippable_batch_is_named_with_the_reason() -> None:
    allocated = fold(
        [
            ev.BatchPledged(
                pledge_id="p",
                donor_id="d",
                line_no=1,
                item="mask",
                quantity=5,
                unit=ev.Unit.BOX,
                warehouse_id=WAREHOUSE,
            ),
            ev.BatchReceived(site_id=WAREHOUSE, quantity_received=5),
            ev.BatchInspected(inspector="qc", standard_checked="N95", accepted=5, rejected=0, quarantined=0),
        ],
        "b-stock",
    )
    states: dict[str, BatchState | None] = {
        "b-stock": allocated,
        "b-other": picked_batch("b-other", recipient="tongji-hospital"),
        "b-away": picked_batch("b-away", site="wh-wuhan-2"),
    }
    with pytest.raises(RuleViolation) as refused:
        domain.check_batches(["b-stock", "b-other", "b-away", "b-ghost"], states, RECIPIENT, WAREHOUSE)
    message = refused.value.message
    assert "batch b-stock is in_stock; only picked batches can be shipped" in message
    assert "batch b-other is allocated to tongji-hospital, not jinyintan-hospital" in message
    assert "batch b-away is at wh-wuhan-2, but leg 1 starts at wh-wuhan-1" in message
    assert "batch b-ghost is not known to dispatch" in message


def test_a_batch_listed_twice_is_refused() -> None:
    with pytest.raises(RuleViolation, match="lists b-1 more than once"):
        domain.check_batches(["b-1", "b-1"], {"b-1": picked_batch("b-1")}, RECIPIENT, WAREHOUSE)


# --- next steps --------------------------------------------------------------------------------------------


def test_allowed_actions_follow_the_shipment_along_its_route() -> None:
    progress = planned()
    assert domain.allowed_actions(progress) == [Action.DISPATCH]
    on_leg_1 = Progress("s", RECIPIENT, ShipmentStatus.IN_TRANSIT, VIA_HUB, current_leg_no=1, carrier="SF Express")
    assert domain.allowed_actions(on_leg_1) == [Action.ARRIVE, Action.WRITE_OFF]
    at_hub = Progress("s", RECIPIENT, ShipmentStatus.AT_HUB, VIA_HUB, current_leg_no=1, carrier="SF Express")
    assert domain.allowed_actions(at_hub) == [Action.HANDOVER, Action.DEPART, Action.WRITE_OFF]
    on_last_leg = Progress("s", RECIPIENT, ShipmentStatus.IN_TRANSIT, VIA_HUB, current_leg_no=2, carrier="JD")
    assert domain.allowed_actions(on_last_leg) == [Action.DELIVER, Action.WRITE_OFF]
    for closed in (ShipmentStatus.DELIVERED, ShipmentStatus.WRITTEN_OFF):
        assert domain.allowed_actions(Progress("s", RECIPIENT, closed, VIA_HUB, current_leg_no=2)) == []


def test_deliver_before_dispatch_is_a_409_naming_shipment_and_batch_states() -> None:
    states = {"b-1": picked_batch("b-1")}
    with pytest.raises(IllegalTransition) as refused:
        movement.move(planned(), movement.Deliver(), states)
    error = refused.value
    assert error.status_code == 409
    assert error.current_state == "planned"
    assert error.allowed == ["dispatch"]
    assert "shipment shp-1 is planned, waiting at wh-wuhan-1; its batches: b-1 picked" in error.message
    assert "'deliver' is not allowed now" in error.message


def test_arriving_at_the_recipients_facility_is_refused_with_a_hint_to_deliver() -> None:
    progress, states, _ = run(planned(legs((WAREHOUSE, FACILITY))), movement.Dispatch(), {"b-1": picked_batch()})
    with pytest.raises(IllegalTransition) as refused:
        movement.move(progress, movement.Arrive(), states)
    assert "ends at the recipient's facility: use deliver" in refused.value.message
    assert refused.value.allowed == ["deliver", "write-off"]


def test_delivering_on_a_leg_that_ends_at_a_hub_says_to_arrive_first() -> None:
    progress, states, _ = run(planned(), movement.Dispatch(), {"b-1": picked_batch()})
    with pytest.raises(IllegalTransition, match="ends at relay hub hub-xiantao: arrive first"):
        movement.move(progress, movement.Deliver(), states)


def test_arriving_twice_is_refused() -> None:
    progress, states, _ = run(planned(), movement.Dispatch(), {"b-1": picked_batch()})
    progress, states, _ = run(progress, movement.Arrive(), states)
    with pytest.raises(IllegalTransition) as refused:
        movement.move(progress, movement.Arrive(), states)
    assert refused.value.current_state == "at_hub"
    assert "b-1 at_hub" in refused.value.message


def test_acting_sites_are_where_the_goods_are_or_arrive() -> None:
    progress = planned()
    assert domain.acting_sites(progress, Action.DISPATCH) == (WAREHOUSE,)
    moving = Progress("s", RECIPIENT, ShipmentStatus.IN_TRANSIT, VIA_HUB, current_leg_no=1, carrier="SF Express")
    assert domain.acting_sites(moving, Action.ARRIVE) == (HUB,)
    assert domain.acting_sites(moving, Action.WRITE_OFF) == (WAREHOUSE, HUB)
    at_hub = Progress("s", RECIPIENT, ShipmentStatus.AT_HUB, VIA_HUB, current_leg_no=1, carrier="SF Express")
    assert domain.acting_sites(at_hub, Action.DEPART) == (HUB,)
    assert domain.acting_sites(at_hub, Action.WRITE_OFF) == (HUB,)
    last = Progress("s", RECIPIENT, ShipmentStatus.IN_TRANSIT, VIA_HUB, current_leg_no=2, carrier="JD")
    assert domain.acting_sites(last, Action.DELIVER) == (HUB, FACILITY)


# --- movement ----------------------------------------------------------------------------------------------


def test_a_shipment_through_a_hub_with_a_handover_makes_the_events_in_order() -> None:
    states = {"b-1": picked_batch("b-1", 100), "b-2": picked_batch("b-2", 40)}
    progress, states, made = run(planned(), movement.Dispatch(), states)
    assert [type(p) for p in made] == [ev.BatchDispatched, ev.BatchDispatched]
    assert [p.quantity for p in made if isinstance(p, ev.BatchDispatched)] == [100, 40]
    assert (progress.status, progress.carrier, progress.vehicle) == (ShipmentStatus.IN_TRANSIT, "SF Express", "truck-1")

    progress, states, made = run(progress, movement.Arrive(), states)
    assert made[0] == ev.BatchArrivedAtHub(shipment_id="shp-1", leg_no=1, hub_site_id=HUB)
    assert domain.current_site(progress) == HUB

    progress, states, made = run(progress, movement.Handover(to_carrier="China Post EMS", vehicle="E-1"), states)
    assert made[0] == ev.BatchHandedOver(
        shipment_id="shp-1", hub_site_id=HUB, from_carrier="SF Express", to_carrier="China Post EMS", vehicle="E-1"
    )

    progress, states, made = run(progress, movement.Depart(), states)
    departed = made[0]
    assert isinstance(departed, ev.BatchDepartedHub)
    assert (departed.leg_no, departed.hub_site_id, departed.to_site_id) == (2, HUB, FACILITY)
    assert (departed.carrier, departed.vehicle) == ("China Post EMS", "E-1"), "the handover overrides the plan"

    progress, states, made = run(progress, movement.Deliver(), states)
    assert [p.quantity for p in made if isinstance(p, ev.BatchDelivered)] == [100, 40]
    assert progress.status is ShipmentStatus.DELIVERED
    assert all(s.status is BatchStatus.DELIVERED and s.location_site_id == FACILITY for s in states.values())


def test_without_a_handover_the_next_leg_leaves_with_its_planned_carrier() -> None:
    progress, states, _ = run(planned(), movement.Dispatch(), {"b-1": picked_batch()})
    progress, states, _ = run(progress, movement.Arrive(), states)
    progress, _, made = run(progress, movement.Depart(), states)
    assert isinstance(made[0], ev.BatchDepartedHub)
    assert (made[0].carrier, made[0].vehicle) == ("JD Logistics", "truck-2")
    assert (progress.current_leg_no, progress.carrier) == (2, "JD Logistics")


def test_handing_over_to_the_carrier_that_already_holds_the_goods_is_refused() -> None:
    progress, states, _ = run(planned(), movement.Dispatch(), {"b-1": picked_batch()})
    progress, states, _ = run(progress, movement.Arrive(), states)
    with pytest.raises(RuleViolation, match="already held by SF Express"):
        movement.move(progress, movement.Handover(to_carrier="SF Express"), states)


def test_a_loss_in_transit_leaves_the_rest_to_be_delivered_and_quantities_add_up() -> None:
    progress, states, _ = run(planned(), movement.Dispatch(), {"b-1": picked_batch("b-1", 100)})
    lost = movement.WriteOff(batch_id="b-1", quantity=30, reason=ev.WriteOffReason.LOST, note="pallet missing")
    progress, states, made = run(progress, lost, states)
    assert made == [
        ev.BatchWrittenOff(
            quantity=30,
            reason=ev.WriteOffReason.LOST,
            stage=ev.WriteOffStage.TRANSIT,
            note="pallet missing",
            shipment_id="shp-1",
        )
    ]
    assert progress.status is ShipmentStatus.IN_TRANSIT
    progress, states, _ = run(progress, movement.Arrive(), states)
    progress, states, _ = run(progress, movement.Depart(), states)
    progress, states, made = run(progress, movement.Deliver(), states)
    batch = states["b-1"]
    assert isinstance(made[0], ev.BatchDelivered) and made[0].quantity == 70
    assert batch.delivered + batch.written_off_transit == batch.dispatched == 100


def test_writing_off_more_than_is_in_transit_is_refused_by_the_fold() -> None:
    progress, states, _ = run(planned(), movement.Dispatch(), {"b-1": picked_batch("b-1", 10)})
    too_much = movement.WriteOff(batch_id="b-1", quantity=11, reason=ev.WriteOffReason.DAMAGED, note="crushed")
    with pytest.raises(RuleViolation, match="only 10 are in transit"):
        movement.move(progress, too_much, states)


def test_writing_off_a_batch_that_is_not_on_the_shipment_is_refused() -> None:
    progress, states, _ = run(planned(), movement.Dispatch(), {"b-1": picked_batch("b-1")})
    stray = movement.WriteOff(batch_id="b-9", quantity=1, reason=ev.WriteOffReason.LOST, note="?")
    with pytest.raises(RuleViolation, match="batch b-9 is not on shipment shp-1; its batches are b-1"):
        movement.move(progress, stray, states)


def test_batches_written_off_whole_stay_behind_and_close_the_shipment_when_none_is_left() -> None:
    states = {"b-1": picked_batch("b-1", 10), "b-2": picked_batch("b-2", 5)}
    progress, states, _ = run(planned(), movement.Dispatch(), states)
    whole = movement.WriteOff(batch_id="b-1", quantity=10, reason=ev.WriteOffReason.LOST, note="truck stolen")
    progress, states, _ = run(progress, whole, states)
    assert progress.status is ShipmentStatus.IN_TRANSIT
    _, _, made = run(progress, movement.Arrive(), states)
    assert len(made) == 1, "only b-2 still moves"
    rest = movement.WriteOff(batch_id="b-2", quantity=5, reason=ev.WriteOffReason.DAMAGED, note="flooded")
    progress, states, _ = run(progress, rest, states)
    assert progress.status is ShipmentStatus.WRITTEN_OFF
    assert domain.allowed_actions(progress) == []


def test_a_shipment_whose_every_batch_was_written_off_at_the_warehouse_cannot_be_dispatched() -> None:
    state = apply(
        picked_batch("b-1", 10),
        ev.BatchWrittenOff(quantity=10, reason=ev.WriteOffReason.EXPIRED, stage=ev.WriteOffStage.STOCK, note="old"),
        "b-1",
    )
    with pytest.raises(Conflict, match="nothing left to move"):
        movement.move(planned(), movement.Dispatch(), {"b-1": state})


# --- legs table --------------------------------------------------------------------------------------------


def test_leg_changes_record_departures_and_arrivals() -> None:
    states = {"b-1": picked_batch()}
    start = planned()
    on_road, states, _ = run(start, movement.Dispatch(), states)
    assert movement.leg_change(start, on_road) == movement.LegChange(1, LegStatus.IN_TRANSIT, "SF Express", "truck-1")
    at_hub, states, _ = run(on_road, movement.Arrive(), states)
    assert movement.leg_change(on_road, at_hub) == movement.LegChange(1, LegStatus.ARRIVED)
    handed, states, _ = run(at_hub, movement.Handover(to_carrier="EMS"), states)
    assert movement.leg_change(at_hub, handed) is None
    leg_2, states, _ = run(handed, movement.Depart(), states)
    assert movement.leg_change(handed, leg_2) == movement.LegChange(2, LegStatus.IN_TRANSIT, "EMS", None)
    done, _, _ = run(leg_2, movement.Deliver(), states)
    assert movement.leg_change(leg_2, done) == movement.LegChange(2, LegStatus.DELIVERED)
    assert domain.current_site(done) == FACILITY
