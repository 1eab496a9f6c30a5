"""The recipient service's decisions: pure functions from a command and the current state to new events.

Receipt rules (only a delivered batch, received + damaged <= delivered, a reason for any discrepancy) belong to
the shared fold; a confirmation is validated by applying the event to the batch's state, never by restating
them here. What is the recipient's own is the need arithmetic: how receipts add up toward a need, and when a
need counts as fulfilled (exactly once).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.domain.batch_fold import apply
from shared.domain.batch_state import BatchState
from shared.domain.errors import RuleViolation
from shared.events import batch_events as ev
from shared.events import reference_events as ref
from shared.projections.batch_view import current_recipient

# Clocks of callers and servers disagree a little; a deadline this close to now is not "in the past".
DEADLINE_CLOCK_SKEW = timedelta(minutes=5)

PRIORITY_RANK: dict[ref.Priority, int] = {
    ref.Priority.CRITICAL: 0,
    ref.Priority.HIGH: 1,
    ref.Priority.NORMAL: 2,
    ref.Priority.LOW: 3,
}

# Stands in for the recipient only when a batch was never bound for one; the fold refuses such a batch on its
# state before it ever reads the recipient, so this value is never recorded.
NO_RECIPIENT = "no-recipient"


def priority_rank(priority: ref.Priority) -> int:
    """Lower ranks first, so that a list of needs sorts critical before low."""
    return PRIORITY_RANK[priority]


# --- needs -----------------------------------------------------------------------------------------------


def check_deadline(deadline: datetime | None, now: datetime, *, historical: bool) -> None:
    """A need's deadline lies in the future, unless the need is being recorded after the fact.

    Backfilling the 2020 record is legitimate and must keep the real deadlines; otherwise a past deadline is
    almost always a typo (wrong year, wrong month), and a warehouse would rank it as the most overdue need.
    """
    if deadline is None or historical:
        return
    if deadline < now - DEADLINE_CLOCK_SKEW:
        raise RuleViolation(
            f"deadline {deadline.isoformat()} is in the past (now is {now.isoformat(timespec='seconds')}); "
            "give a future deadline, leave it out, or, when recording a need after the fact, "
            "send historical: true as an admin"
        )


def need_registered(
    need_id: str,
    recipient_id: str,
    item: str,
    quantity: int,
    priority: ref.Priority,
    deadline: datetime | None,
    *,
    now: datetime,
    historical: bool,
) -> ref.NeedRegistered:
    check_deadline(deadline, now, historical=historical)
    return ref.NeedRegistered(
        need_id=need_id, recipient_id=recipient_id, item=item, quantity=quantity, priority=priority, deadline=deadline
    )


@dataclass(frozen=True, slots=True)
class NeedTally:
    """How far a need has come: what was asked for, and what has been received in good order so far."""

    need_id: str
    recipient_id: str
    item: str
    quantity: int
    received: int

    @property
    def fulfilled(self) -> bool:
        return self.received >= self.quantity

    @property
    def remaining(self) -> int:
        """Never negative: receiving more than asked for over-fulfils a need, it does not create a credit."""
        return max(self.quantity - self.received, 0)


@dataclass(frozen=True, slots=True)
class ReceiptEffect:
    """The need after counting one receipt, and whether this very receipt is the one that fulfilled it."""

    tally: NeedTally
    counted: int
    fulfilled_now: bool


def count_receipt(tally: NeedTally, quantity_received: int) -> ReceiptEffect:
    """Add a receipt to a need. Only the receipt that crosses the line fulfils it, so NeedFulfilled is once."""
    if quantity_received < 0:
        raise ValueError(f"a receipt counts 0 or more units, not {quantity_received}")
    after = NeedTally(tally.need_id, tally.recipient_id, tally.item, tally.quantity, tally.received + quantity_received)
    return ReceiptEffect(after, quantity_received, fulfilled_now=after.fulfilled and not tally.fulfilled)


def counts_toward(tally: NeedTally, recipient_id: str, item: str) -> bool:
    """A receipt counts toward a need only for the recipient and the item the need asked for."""
    return tally.recipient_id == recipient_id and tally.item == item


def need_fulfilled(tally: NeedTally) -> ref.NeedFulfilled:
    return ref.NeedFulfilled(need_id=tally.need_id, recipient_id=tally.recipient_id, quantity_received=tally.received)


# --- receipts --------------------------------------------------------------------------------------------


def receiving_recipient(state: BatchState) -> str | None:
    """Who may confirm this batch: the recipient it was delivered to, or (not yet delivered) headed for."""
    return current_recipient(state)


def confirm_receipt(
    state: BatchState,
    quantity_received: int,
    quantity_damaged: int,
    signed_by: str,
    discrepancy_reason: str | None,
) -> tuple[ev.ReceiptConfirmed, BatchState]:
    """Build the confirmation and prove it with the fold; the fold's refusal is the answer to the caller."""
    payload = ev.ReceiptConfirmed(
        recipient_id=state.delivered_to_recipient_id or receiving_recipient(state) or NO_RECIPIENT,
        quantity_received=quantity_received,
        quantity_damaged=quantity_damaged,
        signed_by=signed_by,
        discrepancy_reason=discrepancy_reason,
    )
    return payload, apply(state, payload, state.batch_id)


def need_of(state: BatchState) -> str | None:
    """The need a picked batch was allocated for; the allocation travels with the batch once picked."""
    return state.picked_allocation.need_id if state.picked_allocation else None
