"""Pure tests of the recipient's own rules: how receipts add up toward a need, and when a deadline is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.recipient import domain
from services.recipient.schemas import NeedIn
from shared.domain.batch_fold import fold
from shared.domain.errors import IllegalTransition, RuleViolation
from shared.events import batch_events as ev
from shared.events.reference_events import Priority

NOW = datetime(2020, 2, 1, 12, 0, tzinfo=UTC)


def tally(quantity: int = 1000, received: int = 0) -> domain.NeedTally:
    return domain.NeedTally("need-1", "jinyintan-hospital", "n95-mask", quantity, received)


# --- need fulfilment arithmetic --------------------------------------------------------------------------


def test_a_partial_receipt_adds_up_but_leaves_the_need_open() -> None:
    effect = domain.count_receipt(tally(1000, 200), 300)
    assert effect.tally.received == 500
    assert effect.tally.remaining == 500
    assert effect.counted == 300
    assert not effect.tally.fulfilled
    assert not effect.fulfilled_now


def test_the_receipt_that_reaches_the_quantity_exactly_fulfils_the_need() -> None:
    effect = domain.count_receipt(tally(1000, 600), 400)
    assert effect.tally.received == 1000
    assert effect.tally.remaining == 0
    assert effect.fulfilled_now


def test_a_receipt_that_overshoots_fulfils_the_need_and_remaining_never_goes_negative() -> None:
    effect = domain.count_receipt(tally(1000, 900), 250)
    assert effect.tally.received == 1150
    assert effect.tally.remaining == 0
    assert effect.fulfilled_now


def test_a_need_is_fulfilled_only_once_later_receipts_still_count_but_do_not_fulfil_again() -> None:
    first = domain.count_receipt(tally(1000), 1000)
    second = domain.count_receipt(first.tally, 50)
    assert first.fulfilled_now
    assert second.tally.received == 1050
    assert second.tally.fulfilled
    assert not second.fulfilled_now


def test_an_empty_receipt_changes_nothing() -> None:
    effect = domain.count_receipt(tally(1000, 10), 0)
    assert effect.tally.received == 10
    assert not effect.fulfilled_now


def test_a_negative_receipt_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="0 or more"):
        domain.count_receipt(tally(), -1)


def test_receipts_only_count_toward_a_need_of_the_same_recipient_and_item() -> None:
    need = tally()
    assert domain.counts_toward(need, "jinyintan-hospital", "n95-mask")
    assert not domain.counts_toward(need, "tongji-hospital", "n95-mask")
    assert not domain.counts_toward(need, "jinyintan-hospital", "protective-suit")


def test_need_fulfilled_reports_the_total_received() -> None:
    event = domain.need_fulfilled(domain.count_receipt(tally(1000, 700), 400).tally)
    assert (event.need_id, event.recipient_id, event.quantity_received) == ("need-1", "jinyintan-hospital", 1100)


def test_priorities_rank_critical_first() -> None:
    ranks = [domain.priority_rank(p) for p in (Priority.CRITICAL, Priority.HIGH, Priority.NORMAL, Priority.LOW)]
    assert ranks == sorted(ranks)
    assert len(set(ranks)) == 4


# --- deadlines -------------------------------------------------------------------------------------------


def test_a_future_deadline_is_accepted() -> None:
    domain.check_deadline(NOW + timedelta(days=3), NOW, historical=False)


def test_a_deadline_within_the_clock_skew_is_not_in_the_past() -> None:
    domain.check_deadline(NOW - timedelta(minutes=4), NOW, historical=False)


def test_a_past_deadline_is_refused_with_the_way_out() -> None:
    with pytest.raises(RuleViolation, match=r"in the past.*historical: true"):
        domain.check_deadline(NOW - timedelta(days=1), NOW, historical=False)


def test_a_past_deadline_is_accepted_when_recording_history() -> None:
    domain.check_deadline(NOW - timedelta(days=365), NOW, historical=True)


@pytest.mark.parametrize(
    "deadline",
    ["tomorrow", "2020-02-05", "2020-02-05T18:00:00", "2020-02-30T18:00:00Z", "20200205T180000Z", 1580896800],
)
def test_a_deadline_that_is_not_rfc3339_with_a_zone_is_refused(deadline: object) -> None:
    with pytest.raises(ValueError, match=r"RFC 3339|calendar"):
        NeedIn.model_validate(
            {"recipient_id": "r", "item": "n95-mask", "quantity": 1, "priority": "high", "deadline": deadline}
        )


def test_an_rfc3339_deadline_keeps_its_offset() -> None:
    need = NeedIn.model_validate(
        {"recipient_id": "r", "item": "n95-mask", "quantity": 1, "priority": "high", "deadline": "2020-02-05T18:00:00Z"}
    )
    assert need.deadline == datetime(2020, 2, 5, 18, tzinfo=UTC)


# --- receipts go through the fold ------------------------------------------------------------------------


def history(quantity: int = 100) -> list[ev.Payload]:
    """A batch's life from pledge to delivery at Jinyintan, allocated for need-1."""
    return [
        ev.BatchPledged(
            pledge_id="p1",
            donor_id="xiaomi",
            line_no=1,
            item="n95-mask",
            quantity=quantity,
            unit=ev.Unit.PIECE,
            warehouse_id="wh-1",
        ),
        ev.BatchReceived(site_id="wh-1", quantity_received=quantity),
        ev.BatchInspected(inspector="qc", standard_checked="N95", accepted=quantity, rejected=0, quarantined=0),
        ev.BatchAllocated(allocation_id="a1", need_id="need-1", recipient_id="jinyintan-hospital", quantity=quantity),
        ev.BatchPicked(allocation_id="a1", quantity=quantity, picker="li"),
        ev.BatchDispatched(
            shipment_id="s1",
            leg_no=1,
            from_site_id="wh-1",
            to_site_id="jinyintan-receiving",
            carrier="sf",
            quantity=quantity,
        ),
        ev.BatchDelivered(
            shipment_id="s1", site_id="jinyintan-receiving", recipient_id="jinyintan-hospital", quantity=quantity
        ),
    ]


PICKED = 5  # the first five events of `history` leave the batch picked


def test_a_full_confirmation_passes_the_fold_and_names_the_need() -> None:
    state = fold(history(), "b1")
    assert state is not None
    payload, confirmed = domain.confirm_receipt(state, 100, 0, "Dr. Zhang", None)
    assert payload.recipient_id == "jinyintan-hospital"
    assert confirmed.status.value == "confirmed"
    assert domain.need_of(state) == "need-1"


def test_a_short_confirmation_without_a_reason_is_refused_by_the_fold_naming_the_numbers() -> None:
    state = fold(history(), "b1")
    assert state is not None
    with pytest.raises(RuleViolation, match="100 were delivered but 90 received"):
        domain.confirm_receipt(state, 90, 0, "Dr. Zhang", None)


def test_confirming_a_batch_not_yet_delivered_is_an_illegal_transition() -> None:
    state = fold(history()[:PICKED], "b1")
    assert state is not None
    with pytest.raises(IllegalTransition) as refused:
        domain.confirm_receipt(state, 100, 0, "Dr. Zhang", None)
    assert refused.value.current_state == "picked"
    assert refused.value.allowed == ["dispatched", "written-off"]
