"""Pure tests of the warehouse's decisions: allocation priority, explanations, intake, inspection, picking, stock."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, date, datetime

import orjson
import pytest

from services.warehouse import allocation, domain, stock
from services.warehouse.allocation import OpenNeed, Unallocated
from shared.domain.batch_fold import fold
from shared.domain.batch_state import BatchState, BatchStatus
from shared.domain.errors import Conflict, DomainError, IllegalTransition, RuleViolation
from shared.events import batch_events as ev
from shared.projections.batch_view import state_to_json

TODAY = date(2020, 2, 1)


def pledged(
    batch_id: str = "p1-1", item: str = "n95-mask", quantity: int = 100, designated: str | None = None
) -> BatchState:
    event = ev.BatchPledged(
        pledge_id="p1",
        donor_id="xiaomi",
        line_no=1,
        item=item,
        quantity=quantity,
        unit=ev.Unit.PIECE,
        standard="N95",
        warehouse_id="wh-1",
        designated_recipient_id=designated,
    )
    state = fold([event], batch_id)
    assert state is not None
    return state


def in_stock(
    batch_id: str = "p1-1",
    item: str = "n95-mask",
    quantity: int = 100,
    *,
    designated: str | None = None,
    expiry: date | None = None,
    quarantined: int = 0,
) -> BatchState:
    state = pledged(batch_id, item, quantity, designated)
    received = ev.BatchReceived(site_id="wh-1", quantity_received=quantity, lot="L1", expiry=expiry)
    inspected = ev.BatchInspected(
        inspector="qc", standard_checked="N95", accepted=quantity - quarantined, rejected=0, quarantined=quarantined
    )
    return domain.decide(domain.decide(state, received).state, inspected).state


def need(
    need_id: str,
    *,
    recipient: str = "tongji",
    item: str = "n95-mask",
    remaining: int = 50,
    frontline: bool = False,
    deadline: datetime | None = None,
    registered_at: str = "2020-01-25T00:00:00Z",
) -> OpenNeed:
    return OpenNeed(need_id, recipient, item, remaining, frontline, deadline, registered_at)


def counter() -> Callable[[], str]:
    numbers = itertools.count(1)
    return lambda: f"a{next(numbers)}"


# --- priority ordering ---------------------------------------------------------------------------------------


def test_frontline_needs_come_before_earlier_deadlines_and_older_needs() -> None:
    early = datetime(2020, 1, 28, tzinfo=UTC)
    late = datetime(2020, 2, 5, tzinfo=UTC)
    needs = [
        need("other-early", deadline=early, registered_at="2020-01-20T00:00:00Z"),
        need("frontline-none", frontline=True),
        need("frontline-late", frontline=True, deadline=late),
        need("frontline-early-new", frontline=True, deadline=early, registered_at="2020-01-26T00:00:00Z"),
        need("frontline-early-old", frontline=True, deadline=early, registered_at="2020-01-24T00:00:00Z"),
        need("other-none-old", registered_at="2020-01-01T00:00:00Z"),
    ]
    ordered = [n.need_id for n in allocation.order_needs(needs)]
    assert ordered == [
        "frontline-early-old",
        "frontline-early-new",
        "frontline-late",
        "frontline-none",
        "other-early",
        "other-none-old",
    ]


def test_plan_serves_the_frontline_need_first_and_never_more_than_it_lacks() -> None:
    needs = [need("city", recipient="xiaogan-committee", remaining=80), need("front", frontline=True, remaining=60)]
    plan = allocation.plan([in_stock(quantity=100)], needs, TODAY, counter())
    made = [(p.payload.need_id, p.payload.quantity, p.payload.priority_rank) for p in plan.allocations]
    assert made == [("front", 60, 1), ("city", 40, 2)]
    assert plan.states["p1-1"].free == 0
    assert plan.explanations == []


def test_plan_prefers_stock_designated_to_the_recipient_then_the_lot_expiring_first() -> None:
    stock_ = [
        in_stock("late", expiry=date(2021, 1, 1)),
        in_stock("soon", expiry=date(2020, 6, 1)),
        in_stock("mine", designated="tongji", expiry=date(2022, 1, 1)),
    ]
    plan = allocation.plan(stock_, [need("n1", remaining=150)], TODAY, counter())
    assert [(p.batch_id, p.payload.quantity) for p in plan.allocations] == [("mine", 100), ("soon", 50)]


def test_designation_lock_is_enforced_by_the_fold_and_explained() -> None:
    locked = in_stock("locked", designated="tongji")
    plan = allocation.plan([locked], [need("n1", recipient="jinyintan", frontline=True)], TODAY, counter())
    assert plan.allocations == []
    [why] = plan.explanations
    assert why.reason is Unallocated.DESIGNATED_NO_NEED
    assert why.quantity == 100
    assert why.message.startswith("designated to tongji, which has no open need for n95-mask")


def test_expired_lots_are_not_allocated() -> None:
    expired = in_stock("old", expiry=date(2020, 1, 31))
    last_day = in_stock("last-day", expiry=TODAY)
    plan = allocation.plan([expired, last_day], [need("n1", remaining=500)], TODAY, counter())
    assert [p.batch_id for p in plan.allocations] == ["last-day"]
    [why] = plan.explanations
    assert (why.batch_id, why.reason) == ("old", Unallocated.EXPIRED)
    assert "lot L1 expired on 2020-01-31" in why.message


@pytest.mark.parametrize(
    ("state", "needs", "reason", "text"),
    [
        (in_stock(), [], Unallocated.NO_OPEN_NEED, "no open need for n95-mask"),
        (in_stock(), [need("n1", item="test-kit")], Unallocated.NO_OPEN_NEED, "no open need for n95-mask"),
        (in_stock(quantity=100), [need("n1", remaining=30)], Unallocated.NEEDS_COVERED, "covered; 70 stay free"),
        (
            in_stock(designated="tongji"),
            [need("n1", recipient="tongji", remaining=10)],
            Unallocated.DESIGNATED_NEED_COVERED,
            "designated to tongji, whose open needs for n95-mask are already covered; 90 stay free",
        ),
    ],
)
def test_every_leftover_is_explained(state: BatchState, needs: list[OpenNeed], reason: Unallocated, text: str) -> None:
    plan = allocation.plan([state], needs, TODAY, counter())
    [why] = plan.explanations
    assert why.reason is reason
    assert text in why.message


def test_quarantined_units_are_explained_beside_the_free_ones() -> None:
    state = in_stock(quantity=100, quarantined=30)
    reasons = {e.reason: e.quantity for e in allocation.explain(state, [], {}, TODAY)}
    assert reasons == {Unallocated.QUARANTINED: 30, Unallocated.NO_OPEN_NEED: 70}


def test_a_picked_batch_is_never_offered_although_its_free_count_is_positive() -> None:
    state = in_stock(quantity=40)
    allocated = domain.decide(state, ev.BatchAllocated(allocation_id="a", need_id="n", recipient_id="r", quantity=40))
    [picked] = domain.pick(allocated.state, "a", "picker")
    assert picked.state.status is BatchStatus.PICKED
    plan = allocation.plan([picked.state], [need("n2")], TODAY, counter())
    assert plan.allocations == [] and plan.explanations == []


# --- intake and inspection -----------------------------------------------------------------------------------


def test_receipt_at_another_warehouse_names_the_expected_one() -> None:
    receipt = ev.BatchReceived(site_id="wh-2", quantity_received=100)
    with pytest.raises(RuleViolation, match="pledged to warehouse wh-1, not wh-2"):
        domain.receive(pledged(), receipt)


def test_receipt_short_without_reason_is_refused_by_the_fold_with_the_numbers() -> None:
    receipt = ev.BatchReceived(site_id="wh-1", quantity_received=90)
    with pytest.raises(RuleViolation, match=r"received 90 \+ shortfall 0 must equal the 100 pledged"):
        domain.receive(pledged(), receipt)


def test_second_receipt_is_an_illegal_transition() -> None:
    receipt = ev.BatchReceived(site_id="wh-2", quantity_received=100)
    with pytest.raises(IllegalTransition) as refused:
        domain.receive(in_stock(), receipt)
    assert refused.value.current_state == "in_stock"


def test_inspection_must_check_the_declared_standard() -> None:
    received = domain.receive(pledged(), ev.BatchReceived(site_id="wh-1", quantity_received=100)).state
    wrong = ev.BatchInspected(inspector="qc", standard_checked="KN95", accepted=100, rejected=0, quarantined=0)
    with pytest.raises(RuleViolation, match="declared standard 'N95'"):
        domain.inspect(received, wrong)
    spelled = ev.BatchInspected(inspector="qc", standard_checked=" n95 ", accepted=100, rejected=0, quarantined=0)
    assert domain.inspect(received, spelled).state.on_hand == 100


def test_manual_allocation_checks_item_remaining_and_expiry() -> None:
    state = in_stock(expiry=date(2020, 12, 31))
    with pytest.raises(RuleViolation, match="but need n1 is for test-kit"):
        domain.allocate(state, need("n1", item="test-kit"), 10, "a1", TODAY)
    with pytest.raises(RuleViolation, match="still lacks only 5"):
        domain.allocate(state, need("n1", remaining=5), 10, "a1", TODAY)
    with pytest.raises(RuleViolation, match="expired on 2020-12-31"):
        domain.allocate(state, need("n1"), 10, "a1", date(2021, 1, 1))
    assert domain.allocate(state, need("n1"), 10, "a1", TODAY).state.reserved == 10


# --- picking -------------------------------------------------------------------------------------------------


def allocated(state: BatchState, *quantities: int) -> BatchState:
    for number, quantity in enumerate(quantities, start=1):
        payload = ev.BatchAllocated(allocation_id=f"a{number}", need_id="n", recipient_id="tongji", quantity=quantity)
        state = domain.decide(state, payload).state
    return state


def test_picking_part_of_a_batch_splits_off_a_child_that_names_its_parent() -> None:
    state = allocated(in_stock(quantity=100), 30, 20)
    parent, child = domain.pick(state, "a1", "zhang")
    assert (parent.stream_id, child.stream_id) == ("p1-1", "p1-1.1")
    assert child.state.parent_batch_id == "p1-1" and child.state.root_batch_id == "p1-1"
    assert child.state.status is BatchStatus.PICKED
    assert [type(p) for p in child.payloads] == [ev.BatchCreatedBySplit, ev.BatchPicked]
    assert child.state.on_hand + parent.state.on_hand == state.on_hand
    assert parent.state.children == (("p1-1.1", 30),)
    assert [a.allocation_id for a in parent.state.allocations] == ["a2"]


def test_second_split_numbers_the_next_child() -> None:
    state = allocated(in_stock(quantity=100), 30, 20)
    first_parent, _ = domain.pick(state, "a1", "zhang")
    second_parent, second_child = domain.pick(first_parent.state, "a2", "zhang")
    assert second_child.stream_id == "p1-1.2"
    assert second_parent.state.on_hand == 50 and second_parent.state.split_out == 50


def test_picking_the_only_allocation_of_all_stock_picks_the_batch_itself() -> None:
    [whole] = domain.pick(allocated(in_stock(quantity=100), 100), "a1", "zhang")
    assert whole.stream_id == "p1-1"
    assert whole.state.status is BatchStatus.PICKED


def test_picking_an_unknown_allocation_is_a_conflict_naming_the_open_ones() -> None:
    with pytest.raises(Conflict, match=r"no open allocation a9 \(open allocations: a1\)"):
        domain.pick(allocated(in_stock(), 10), "a9", "zhang")


def test_write_off_beyond_free_stock_is_refused() -> None:
    state = allocated(in_stock(quantity=100), 80)
    with pytest.raises(DomainError, match="only 20 free"):
        domain.write_off(state, 30, ev.WriteOffReason.DAMAGED, "crushed")
    assert domain.write_off(state, 20, ev.WriteOffReason.DAMAGED, "crushed").state.on_hand == 80


# --- stock ---------------------------------------------------------------------------------------------------


def test_stock_adds_up_batches_of_one_lot_and_counts_picked_goods_as_reserved() -> None:
    lot_a = allocated(in_stock("a", quantity=100, quarantined=10, expiry=date(2021, 1, 1)), 30)
    [picked] = domain.pick(allocated(in_stock("b", quantity=50, expiry=date(2021, 1, 1)), 50), "a1", "z")
    waiting = domain.receive(pledged("c"), ev.BatchReceived(site_id="wh-1", quantity_received=100, lot="L9")).state
    rows = [("wh-1", state_to_json(s)) for s in (lot_a, picked.state, waiting)]
    lines = stock.aggregate((site, _json_roundtrip(state)) for site, state in rows)
    by_lot = {(line.lot, line.expiry): line for line in lines}
    line = by_lot[("L1", date(2021, 1, 1))]
    assert (line.on_hand, line.reserved, line.free, line.quarantined, line.batches) == (140, 80, 60, 10, 2)
    assert by_lot[("L9", None)].awaiting_inspection == 100


def _json_roundtrip(state: dict[str, object]) -> dict[str, object]:
    """As the batch view stores it: dates become ISO strings."""
    loaded: dict[str, object] = orjson.loads(orjson.dumps(state, default=str))
    return loaded
