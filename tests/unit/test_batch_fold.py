"""The fold: what a batch's events mean, and the clear refusals of what they may not say."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.batch_fold import allowed_events, apply, fold
from shared.domain.batch_state import BatchStatus
from shared.domain.errors import IllegalTransition, RuleViolation
from shared.events import batch_events as ev
from tests.unit import lifecycle_builders as b


def test_a_full_lifecycle_ends_confirmed_with_every_quantity_accounted_for() -> None:
    state = fold(b.full_lifecycle(1000), "b1")
    assert state is not None
    assert state.status is BatchStatus.CONFIRMED
    assert state.version == 10
    assert state.quantity_received + state.shortfall == state.quantity_pledged
    assert state.dispatched == state.delivered + state.written_off_transit
    assert state.confirmed_received == 1000
    assert state.delivered_to_recipient_id == "jinyintan-hospital"


def test_an_event_out_of_order_is_refused_naming_the_state_and_what_is_allowed() -> None:
    state = fold([b.pledged()], "b1")
    with pytest.raises(IllegalTransition) as refused:
        apply(state, b.dispatched(1000))
    assert refused.value.current_state == "pledged"
    assert "received" in refused.value.allowed
    assert "batch b1 is pledged" in refused.value.message
    assert "Allowed next: amended, cancelled, received, redesignated" in refused.value.message


def test_a_batch_cannot_be_born_twice() -> None:
    state = fold([b.pledged()], "b1")
    with pytest.raises(IllegalTransition):
        apply(state, b.pledged())


def test_received_plus_shortfall_must_equal_pledged() -> None:
    state = fold([b.pledged(1000)], "b1")
    with pytest.raises(RuleViolation, match="must equal the 1000 pledged"):
        apply(state, b.received(900))
    with pytest.raises(RuleViolation, match="needs a shortfall_reason"):
        apply(state, b.received(900, shortfall=100))
    short = apply(state, b.received(900, shortfall=100, reason="one carton lost at customs"))
    assert (short.quantity_received, short.shortfall) == (900, 100)


def test_inspection_must_account_for_everything_received() -> None:
    state = fold([b.pledged(), b.received()], "b1")
    with pytest.raises(RuleViolation, match="must add up to what was received"):
        apply(state, b.inspected(accepted=500, rejected=100))


def test_rejected_goods_leave_usable_stock_and_quarantine_can_be_released() -> None:
    state = fold([b.pledged(), b.received(), b.inspected(accepted=600, rejected=100, quarantined=300)], "b1")
    assert state is not None
    assert (state.on_hand, state.status) == (600, BatchStatus.IN_STOCK)
    released = apply(
        state, ev.QuarantineResolved(inspector="qc.zhang", released=200, rejected=100, evidence_refs=["lab-7"])
    )
    assert (released.on_hand, released.accepted, released.rejected, released.quarantined) == (800, 800, 200, 0)
    assert released.accepted + released.rejected + released.quarantined == released.quantity_received


def test_wholly_rejected_batch_is_rejected_and_takes_no_allocation() -> None:
    state = fold([b.pledged(), b.received(), b.inspected(accepted=0, rejected=1000)], "b1")
    assert state is not None and state.status is BatchStatus.REJECTED
    with pytest.raises(IllegalTransition):
        apply(state, b.allocated(10))


def test_designation_lock_refuses_another_recipient_until_redesignated() -> None:
    state = fold([b.pledged(), b.received(), b.inspected()], "b1")
    with pytest.raises(RuleViolation, match="designation lock"):
        apply(state, b.allocated(100, recipient="tongji-hospital"))
    redesignated = apply(
        state,
        ev.BatchRedesignated(
            from_recipient_id="jinyintan-hospital",
            to_recipient_id="tongji-hospital",
            approved_by="wuhan-charity-federation:chen",
            reason="Jinyintan fully supplied",
        ),
    )
    allocated = apply(redesignated, b.allocated(100, recipient="tongji-hospital"))
    assert allocated.allocated_recipient_id == "tongji-hospital"


def test_allocation_cannot_exceed_free_stock() -> None:
    state = fold([b.pledged(), b.received(), b.inspected(), b.allocated(700)], "b1")
    with pytest.raises(RuleViolation, match="only 300 free"):
        apply(state, b.allocated(400, allocation_id="alloc-2"))


def test_partial_pick_needs_a_split_and_the_split_conserves_quantities() -> None:
    state = fold([b.pledged(), b.received(), b.inspected(), b.allocated(300)], "b1")
    with pytest.raises(RuleViolation, match="partial"):
        apply(state, b.picked(300))
    parent = apply(state, ev.BatchSplit(child_batch_id="b1.1", allocation_id="alloc-1", quantity=300))
    assert parent.on_hand + sum(q for _, q in parent.children) == parent.accepted
    assert parent.status is BatchStatus.IN_STOCK and parent.free == 700


def test_child_batch_names_its_parent_and_ships_on_its_own() -> None:
    child = fold(
        [
            ev.BatchCreatedBySplit(
                parent_batch_id="b1",
                root_batch_id="b1",
                pledge_id="xiaomi-2020-01",
                donor_id="xiaomi",
                item="n95-mask",
                category="medical",
                unit=ev.Unit.PIECE,
                quantity=300,
                site_id="wh-wuhan-1",
                allocation_id="alloc-1",
                need_id="need-1",
                recipient_id="jinyintan-hospital",
            ),
            b.picked(300),
            b.dispatched(300),
        ],
        "b1.1",
    )
    assert child is not None
    assert (child.parent_batch_id, child.status, child.in_transit) == ("b1", BatchStatus.IN_TRANSIT, 300)


def test_transit_write_off_and_delivery_conserve_what_was_dispatched() -> None:
    state = fold(b.full_lifecycle(1000)[:7], "b1")
    assert state is not None and state.status is BatchStatus.AT_HUB
    lost = apply(
        state,
        ev.BatchWrittenOff(quantity=50, reason=ev.WriteOffReason.LOST, stage=ev.WriteOffStage.TRANSIT, note="fell off"),
    )
    moving = apply(lost, b.departed())
    with pytest.raises(RuleViolation, match="950 are in transit"):
        apply(moving, b.delivered(1000))
    done = apply(moving, b.delivered(950))
    assert done.dispatched == done.delivered + done.written_off_transit


def test_delivery_to_someone_else_than_the_allocated_recipient_is_refused() -> None:
    state = fold(b.full_lifecycle(1000)[:8], "b1")
    with pytest.raises(RuleViolation, match="allocated to jinyintan-hospital"):
        apply(state, b.delivered(1000, recipient="tongji-hospital"))


def test_a_short_receipt_needs_a_discrepancy_reason() -> None:
    state = fold(b.full_lifecycle(1000)[:9], "b1")
    with pytest.raises(RuleViolation, match="give a discrepancy_reason"):
        apply(state, b.confirmed(980))
    with pytest.raises(RuleViolation, match="exceed"):
        apply(state, b.confirmed(1000, damaged=1, reason="x"))
    confirmed = apply(state, b.confirmed(970, damaged=10, reason="two cartons crushed, one missing"))
    assert confirmed.status is BatchStatus.CONFIRMED


def test_cancelled_and_confirmed_batches_are_final() -> None:
    cancelled = fold([b.pledged(), ev.PledgeLineCancelled(reason="donor withdrew")], "b1")
    assert cancelled is not None and allowed_events(cancelled) == []
    with pytest.raises(IllegalTransition, match="nothing \\(final\\)"):
        apply(cancelled, b.received())


@given(
    accepted=st.integers(0, 10_000),
    rejected=st.integers(0, 10_000),
    quarantined=st.integers(0, 10_000),
    picks=st.lists(st.integers(1, 500), max_size=8),
)
def test_splitting_stock_never_creates_or_loses_units(
    accepted: int, rejected: int, quarantined: int, picks: list[int]
) -> None:
    received = accepted + rejected + quarantined
    if received == 0:
        return
    state = fold([b.pledged(received), b.received(received), b.inspected(accepted, rejected, quarantined)], "b1")
    assert state is not None
    for number, quantity in enumerate(picks, start=1):
        if quantity >= state.on_hand:
            continue
        allocation_id = f"alloc-{number}"
        state = apply(state, b.allocated(quantity, allocation_id=allocation_id))
        state = apply(
            state, ev.BatchSplit(child_batch_id=f"b1.{number}", allocation_id=allocation_id, quantity=quantity)
        )
    assert state.on_hand + state.split_out + state.written_off_stock == state.accepted
    assert sum(q for _, q in state.children) == state.split_out
    assert state.accepted + state.rejected + state.quarantined == state.quantity_received
