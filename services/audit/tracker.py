"""Folds every batch's events with the shared fold, keeping per batch only what the checks need.

Per batch: its current state, when it entered its current phase (for the stuck-batch SLAs), when it first
reached each phase (the compact timeline of the HTML report), and the ids of the events the checks name. Full
event timelines are never kept here: `batch_detail` fetches them on demand for one batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from services.audit.findings import FindingLog
from services.audit.flow import FlowBook
from services.audit.records import LogRecord
from services.audit.refusals import rule_of_refusal
from shared.domain.batch_fold import apply, short_name
from shared.domain.batch_state import BatchState, BatchStatus
from shared.domain.errors import DomainError
from shared.domain.transitions import illegal
from shared.events import batch_events as ev
from shared.events.registry import InvalidPayload, UnknownEventType, parse_envelope

if TYPE_CHECKING:
    from services.audit.closing import FamilyCloser

BIRTHS = (ev.BatchPledged, ev.BatchCreatedBySplit)


def phase_of(status: BatchStatus) -> str:
    """At a hub a batch is still in transit: its transit SLA runs from dispatch to delivery. A table, because
    an enum's `.value` is a Python-level property, and this runs per event."""
    return _PHASES[status]


_PHASES = {status: "in_transit" if status is BatchStatus.AT_HUB else status.value for status in BatchStatus}


@dataclass(slots=True)
class BatchTrack:
    batch_id: str
    state: BatchState | None = None
    born_event_id: str | None = None
    last_event_id: str | None = None
    last_event_time: datetime | None = None
    phase: str | None = None
    phase_since: datetime | None = None
    phase_event_id: str | None = None
    milestones: dict[str, datetime] = field(default_factory=dict)
    hub_arrivals: int = 0
    events: int = 0
    refused: int = 0
    last_site: str | None = None
    delivered_event_id: str | None = None
    split_events: dict[str, tuple[str, str | None]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Transition:
    """One batch event applied (or refused): what a hook such as the EPCIS export or a timeline needs."""

    record: LogRecord
    payload: ev.Payload
    before: BatchState | None
    after: BatchState | None
    refusal: DomainError | None

    @property
    def batch_id(self) -> str:
        assert self.record.envelope is not None
        return self.record.envelope.subject


def parse(record: LogRecord, findings: FindingLog) -> ev.Payload | None:
    envelope = record.envelope
    assert envelope is not None
    try:
        return parse_envelope(envelope)
    except (UnknownEventType, InvalidPayload) as exc:
        findings.add("events-readable", f"{exc} (at {record.where})", [envelope.id], envelope.subject)
        return None


class BatchBook:
    def __init__(
        self,
        findings: FindingLog,
        flow: FlowBook | None = None,
        starts_mid_log: bool = False,
        closer: FamilyCloser | None = None,
    ):
        """`closer`: a summary replay's, which checks and drops batch families as they close."""
        self.findings = findings
        self.flow = flow or FlowBook()
        self.starts_mid_log = starts_mid_log
        self.closer = closer
        self.tracks: dict[str, BatchTrack] = {}
        self.skipped_partial = 0

    def apply(self, record: LogRecord) -> Transition | None:
        envelope = record.envelope
        assert envelope is not None
        payload = parse(record, self.findings)
        if payload is None:
            return None
        self._check_key(record)
        track = self.tracks.get(envelope.subject)
        if track is None and self.closer is not None:
            closed = self.closer.closed_status(envelope.subject)
            if closed is not None:
                return self._refused_closed(record, payload, closed)
        if track is None:
            if self.starts_mid_log and not isinstance(payload, BIRTHS):
                self.skipped_partial += 1  # born before the window: its history is not in view
                return None
            track = self.tracks[envelope.subject] = BatchTrack(envelope.subject)
        before = track.state
        try:
            after = apply(before, payload, envelope.subject)
        except DomainError as exc:
            self._refused(record, payload, track, exc)
            return Transition(record, payload, before, before, exc)
        self._update(track, record, payload, after)
        if self.closer is not None:
            if before is None:
                self.closer.born(track, after)
            self.closer.settled(self.tracks, before, after)
        return Transition(record, payload, before, after, None)

    def _refused_closed(self, record: LogRecord, payload: ev.Payload, status: BatchStatus) -> Transition:
        """An event for a batch a summary replay has closed: its final state accepts nothing, so the fold
        would refuse it naming only the batch and its status; a stand-in state with those two says the same."""
        envelope = record.envelope
        assert envelope is not None
        stand_in = BatchState(envelope.subject, status, "", "", "", "", "", None, 0, "")
        exc = illegal(stand_in, short_name(payload.event_type))
        self._refused(record, payload, BatchTrack(envelope.subject, stand_in), exc)
        return Transition(record, payload, stand_in, stand_in, exc)

    def _check_key(self, record: LogRecord) -> None:
        envelope = record.envelope
        assert envelope is not None
        if record.key != envelope.subject:
            self.findings.add(
                "events-readable",
                f"record at {record.where} is keyed {record.key!r} but is about batch {envelope.subject}; "
                "its order relative to the batch's other events is not guaranteed",
                [envelope.id],
                envelope.subject,
            )

    def _refused(self, record: LogRecord, payload: ev.Payload, track: BatchTrack, exc: DomainError) -> None:
        envelope = record.envelope
        assert envelope is not None
        track.refused += 1
        what = f"{short_name(envelope.type)} {envelope.id} at {record.where} refused by the fold: {exc.message}"
        self.findings.add("fold-accepts-all", what, [envelope.id], envelope.subject)
        rule = rule_of_refusal(payload, track.state, exc)
        if rule is not None:
            self.findings.add(rule, what, [envelope.id], envelope.subject)

    def _update(self, track: BatchTrack, record: LogRecord, payload: ev.Payload, after: BatchState) -> None:
        envelope = record.envelope
        assert envelope is not None
        before = track.state
        track.state = after
        track.events += 1
        track.born_event_id = track.born_event_id or envelope.id
        track.last_event_id, track.last_event_time = envelope.id, envelope.time
        phase = phase_of(after.status)
        if phase != track.phase:
            track.phase, track.phase_since, track.phase_event_id = phase, envelope.time, envelope.id
            track.milestones.setdefault(phase, envelope.time)
        self._note_payload(track, payload, before, envelope.id)
        self.flow.apply(payload, before, after, track.last_site)
        track.last_site = after.location_site_id or track.last_site

    def _note_payload(self, track: BatchTrack, payload: ev.Payload, before: BatchState | None, event_id: str) -> None:
        if isinstance(payload, ev.BatchSplit):
            designation = before.designated_recipient_id if before else None
            track.split_events[payload.child_batch_id] = (event_id, designation)
        elif isinstance(payload, ev.BatchDelivered):
            track.delivered_event_id = event_id
        elif isinstance(payload, ev.BatchArrivedAtHub):
            track.hub_arrivals += 1
        elif isinstance(payload, ev.BatchDispatched):
            track.last_site = payload.from_site_id
