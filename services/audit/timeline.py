"""One batch's events as an auditor reads them: what happened, when, who did it, where, and which service
wrote it (with its chain sequence), in the batch's stream order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.audit.tracker import Transition
from shared.domain.batch_fold import short_name
from shared.events import batch_events as ev
from shared.events.envelope import format_time


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    batch_id: str
    event_id: str
    type: str
    ce_type: str
    time: str
    actor: str
    source: str
    sequence: int | None
    site: str | None
    summary: str
    status_after: str | None
    refused: str | None
    where: str

    def to_json(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "event_id": self.event_id,
            "type": self.type,
            "ce_type": self.ce_type,
            "time": self.time,
            "actor": self.actor,
            "source": self.source,
            "sequence": self.sequence,
            "site": self.site,
            "summary": self.summary,
            "status_after": self.status_after,
            "refused": self.refused,
            "where": self.where,
        }


def entry(transition: Transition) -> TimelineEntry:
    envelope = transition.record.envelope
    assert envelope is not None
    after = transition.after
    return TimelineEntry(
        batch_id=envelope.subject,
        event_id=envelope.id,
        type=short_name(envelope.type),
        ce_type=envelope.type,
        time=format_time(envelope.time),
        actor=envelope.actor,
        source=envelope.source,
        sequence=envelope.sequence,
        site=site_of(transition.payload),
        summary=describe(transition.payload),
        status_after=after.status.value if after and transition.refusal is None else None,
        refused=transition.refusal.message if transition.refusal else None,
        where=transition.record.where,
    )


def site_of(payload: ev.Payload) -> str | None:
    for name in ("site_id", "hub_site_id", "from_site_id", "warehouse_id"):
        value = getattr(payload, name, None)
        if isinstance(value, str):
            return value
    return None


def describe(p: ev.Payload) -> str:
    """One line a person can read; the full payload stays available in the JSON of the event."""
    match p:
        case ev.BatchPledged():
            to = f", designated to {p.designated_recipient_id}" if p.designated_recipient_id else ""
            return f"{p.donor_id} pledged {p.quantity} {p.unit} {p.item} (pledge {p.pledge_id}){to}"
        case ev.BatchReceived():
            short = f", {p.shortfall} short ({p.shortfall_reason})" if p.shortfall else ""
            return f"received {p.quantity_received} at {p.site_id}{short}"
        case ev.BatchInspected():
            return f"inspected by {p.inspector}: {p.accepted} accepted, {p.rejected} rejected, {p.quarantined} held"
        case ev.QuarantineResolved():
            return f"quarantine resolved by {p.inspector}: {p.released} released, {p.rejected} rejected"
        case ev.BatchRedesignated():
            return f"redesignated {p.from_recipient_id} -> {p.to_recipient_id}, approved by {p.approved_by}: {p.reason}"
        case ev.BatchAllocated():
            return f"{p.quantity} allocated to {p.recipient_id} (need {p.need_id})"
        case ev.BatchSplit():
            return f"{p.quantity} split off to child batch {p.child_batch_id}"
        case ev.BatchCreatedBySplit():
            return f"created from {p.parent_batch_id} with {p.quantity} for {p.recipient_id}"
        case ev.BatchPicked():
            return f"{p.quantity} picked by {p.picker}"
        case ev.BatchWrittenOff():
            return f"{p.quantity} written off in {p.stage} ({p.reason}): {p.note}"
        case ev.BatchDispatched():
            return f"{p.quantity} dispatched {p.from_site_id} -> {p.to_site_id} with {p.carrier} ({p.shipment_id})"
        case ev.BatchArrivedAtHub():
            return f"arrived at hub {p.hub_site_id}"
        case ev.BatchHandedOver():
            return f"handed over at {p.hub_site_id} from {p.from_carrier} to {p.to_carrier}"
        case ev.BatchDepartedHub():
            return f"departed {p.hub_site_id} -> {p.to_site_id} with {p.carrier}"
        case ev.BatchDelivered():
            return f"{p.quantity} delivered to {p.recipient_id} at {p.site_id}"
        case ev.ReceiptConfirmed():
            damaged = f", {p.quantity_damaged} damaged" if p.quantity_damaged else ""
            return f"{p.recipient_id} confirmed {p.quantity_received} received{damaged}, signed by {p.signed_by}"
        case ev.PledgeLineCancelled():
            return f"pledge line cancelled: {p.reason}"
        case ev.PledgeLineAmended():
            return f"pledge line amended: {p.reason}"
    return type(p).__name__
