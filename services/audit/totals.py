"""Per donor and per recipient totals: what was pledged, received, rejected, delivered and confirmed.

Donor rows answer "where did my goods go?"; recipient rows answer "what was promised to us and what arrived?".
For a recipient, pledged/received/rejected count the batches designated to it; delivered/confirmed count
what reached it, designated or not.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from shared.domain.batch_state import BatchState, BatchStatus


@dataclass(slots=True)
class PartyTotals:
    pledged: int = 0
    received: int = 0
    shortfall: int = 0
    rejected: int = 0
    written_off: int = 0
    delivered: int = 0
    confirmed: int = 0
    damaged: int = 0

    def to_json(self) -> dict[str, int]:
        return asdict(self)


@dataclass(slots=True)
class Totals:
    donors: dict[str, PartyTotals]
    recipients: dict[str, PartyTotals]

    def to_json(self) -> dict[str, Any]:
        return {
            "donors": {k: v.to_json() for k, v in sorted(self.donors.items())},
            "recipients": {k: v.to_json() for k, v in sorted(self.recipients.items())},
        }


def compute_totals(states: Iterable[BatchState], into: Totals | None = None) -> Totals:
    """`into`: add to totals already summed (a summary replay adds each batch family as it closes)."""
    totals = into if into is not None else Totals({}, {})
    for state in states:
        add_state(totals, state)
    return totals


def add_state(totals: Totals, state: BatchState) -> None:
    donors, recipients = totals.donors, totals.recipients
    donor = donors.setdefault(state.donor_id, PartyTotals())
    if state.parent_batch_id is None:
        _add_intake(donor, state)
        if state.designated_recipient_id:
            _add_intake(recipients.setdefault(state.designated_recipient_id, PartyTotals()), state)
    _add_outcome(donor, state)
    if state.delivered_to_recipient_id:
        _add_outcome(recipients.setdefault(state.delivered_to_recipient_id, PartyTotals()), state)


def _add_intake(totals: PartyTotals, state: BatchState) -> None:
    if state.status is not BatchStatus.CANCELLED:
        totals.pledged += state.quantity_pledged
    totals.received += state.quantity_received
    totals.shortfall += state.shortfall
    totals.rejected += state.rejected


def _add_outcome(totals: PartyTotals, state: BatchState) -> None:
    totals.written_off += state.written_off_stock + state.written_off_transit
    totals.delivered += state.delivered
    totals.confirmed += state.confirmed_received
    totals.damaged += state.confirmed_damaged
