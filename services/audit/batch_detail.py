"""Everything about one batch, fetched on demand: timeline, custody, lineage, state and findings.

Two passes, because a full replay must not keep every batch's timeline: the first replays everything (states
for the lineage tree, findings naming the batch); the second reads only the records keyed by the batch and its
ancestors (the key filter skips everything else before decoding) and keeps their transitions.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from services.audit.custody import CustodySegment, custody
from services.audit.findings import Finding, FindingLog
from services.audit.lineage import LineageNode, ancestry, lineage
from services.audit.reader import LogReader, ReplayWindow
from services.audit.replay import AuditOptions, AuditResult, replay
from services.audit.timeline import TimelineEntry, entry
from services.audit.tracker import BatchBook, Transition
from shared.events.envelope import format_time
from shared.projections.batch_view import state_to_json
from shared.settings import Settings


@dataclass(frozen=True, slots=True)
class BatchDetail:
    batch_id: str
    as_of: str | None
    state: dict[str, Any]
    timeline: list[TimelineEntry]
    custody: list[CustodySegment]
    lineage: LineageNode | None
    findings: list[Finding]

    def to_json(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "as_of": self.as_of,
            "state": self.state,
            "timeline": [item.to_json() for item in self.timeline],
            "custody": [segment.to_json() for segment in self.custody],
            "lineage": self.lineage.to_json() if self.lineage else None,
            "findings": [finding.to_json() for finding in self.findings],
        }


async def batch_detail(settings: Settings, batch_id: str, options: AuditOptions | None = None) -> BatchDetail | None:
    """None when the log holds no event of this batch (up to `as_of`)."""
    options = options or AuditOptions()
    result = await replay(settings, options=options)
    track = result.tracks.get(batch_id)
    if track is None or track.state is None:
        return None
    path = ancestry(result.tracks, batch_id)
    transitions = await collect_transitions(settings, path, options)
    return BatchDetail(
        batch_id=batch_id,
        as_of=format_time(options.as_of) if options.as_of else None,
        state=state_to_json(track.state),
        timeline=[entry(t) for t in transitions.get(batch_id, [])],
        custody=custody(custody_path(path, transitions)),
        lineage=lineage(result.tracks, batch_id),
        findings=findings_about(result, batch_id),
    )


async def collect_transitions(
    settings: Settings, batch_ids: Collection[str], options: AuditOptions
) -> dict[str, list[Transition]]:
    """The transitions of a few batches, folded again from only their records; exact duplicates dropped."""
    book = BatchBook(FindingLog(limit=0))
    seen: dict[str, str | None] = {}
    found: dict[str, list[Transition]] = {batch_id: [] for batch_id in batch_ids}
    window = ReplayWindow(since=None, until=options.as_of)
    async with LogReader(settings, [settings.batch_topic], window, keys=batch_ids) as reader:
        async for record in reader.records():
            envelope = record.envelope
            if envelope is None or envelope.subject not in found:
                continue
            if seen.get(envelope.id) == record.content_hash:
                continue
            seen[envelope.id] = record.content_hash
            transition = book.apply(record)
            if transition is not None:
                found[envelope.subject].append(transition)
    return found


def custody_path(path: list[str], transitions: dict[str, list[Transition]]) -> list[Transition]:
    """Each ancestor's transitions up to the split that created the next batch on the path, then the batch's own."""
    steps: list[Transition] = []
    for ancestor, next_batch in pairwise(path):
        for transition in transitions.get(ancestor, []):
            steps.append(transition)
            if getattr(transition.payload, "child_batch_id", None) == next_batch and transition.refusal is None:
                break
    steps.extend(transitions.get(path[-1], []))
    return steps


def findings_about(result: AuditResult, batch_id: str) -> list[Finding]:
    return [finding for check in result.checks for finding in check.findings if finding.batch_id == batch_id]
