"""Chain of custody: who held a batch, where, from when to when, each step backed by the event that shows it.

A child batch's custody begins with its ancestors' (the donor, the warehouse that received the pledge) up to
the split that created it, so the chain runs unbroken from the donor to the recipient who signed for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from services.audit.tracker import Transition
from shared.domain.batch_state import BatchStatus
from shared.events import batch_events as ev
from shared.events.envelope import format_time


@dataclass(frozen=True, slots=True)
class CustodySegment:
    holder_kind: str  # donor, warehouse, carrier, hub, recipient, written_off
    holder: str
    site: str | None
    start: str
    end: str | None
    batch_id: str
    start_event_id: str
    end_event_id: str | None = None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "holder_kind": self.holder_kind,
            "holder": self.holder,
            "site": self.site,
            "from": self.start,
            "to": self.end,
            "batch_id": self.batch_id,
            "start_event_id": self.start_event_id,
            "end_event_id": self.end_event_id,
            "note": self.note,
        }


def custody(transitions: Sequence[Transition]) -> list[CustodySegment]:
    """Segments in time order from the accepted transitions (refused events moved nothing)."""
    segments: list[CustodySegment] = []
    for transition in transitions:
        if transition.refusal is None:
            _step(segments, transition)
    return segments


def _step(segments: list[CustodySegment], t: Transition) -> None:
    envelope = t.record.envelope
    assert envelope is not None and t.after is not None
    p = t.payload
    opened = _holder(p, t)
    if opened is not None:
        kind, holder, site = opened
        _open(segments, kind, holder, site, format_time(envelope.time), envelope.subject, envelope.id)
    elif isinstance(p, ev.ReceiptConfirmed) and segments:
        segments[-1] = replace(segments[-1], note=f"receipt signed by {p.signed_by}")


def _holder(p: ev.Payload, t: Transition) -> tuple[str, str, str | None] | None:
    match p:
        case ev.BatchPledged():
            return ("donor", p.donor_id, None)
        case ev.BatchReceived():
            return ("warehouse", p.site_id, p.site_id)
        case ev.BatchCreatedBySplit():
            return ("warehouse", p.site_id, p.site_id)
        case ev.BatchDispatched():
            return ("carrier", p.carrier, f"{p.from_site_id} -> {p.to_site_id}")
        case ev.BatchArrivedAtHub():
            return ("hub", p.hub_site_id, p.hub_site_id)
        case ev.BatchHandedOver():
            return ("carrier", p.to_carrier, p.hub_site_id)
        case ev.BatchDepartedHub():
            return ("carrier", p.carrier, f"{p.hub_site_id} -> {p.to_site_id}")
        case ev.BatchDelivered():
            return ("recipient", p.recipient_id, p.site_id)
        case ev.BatchWrittenOff() if t.after is not None and t.after.status is BatchStatus.WRITTEN_OFF:
            return ("written_off", p.reason.value, None)
        case ev.PledgeLineCancelled():
            return ("cancelled", "pledge cancelled", None)
    return None


def _open(
    segments: list[CustodySegment], kind: str, holder: str, site: str | None, at: str, batch_id: str, event_id: str
) -> None:
    if segments:
        last = segments[-1]
        if (last.holder_kind, last.holder, last.site) == (kind, holder, site):
            return  # the same holder at the same place: a split's child stays where its parent was
        segments[-1] = replace(last, end=at, end_event_id=event_id)
    segments.append(CustodySegment(kind, holder, site, at, None, batch_id, event_id))
