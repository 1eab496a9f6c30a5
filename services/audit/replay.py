"""`replay(settings, as_of=None) -> AuditResult`: the whole system's state at a moment, rebuilt from the log and
checked.

One pass over both topics, in merged timestamp order: every readable record goes through the chain verifier
(which drops exact duplicates), batch events through the shared fold, reference events into the reference book.
When the end is reached the reconciliation checks run over the folded batches. Memory holds per-batch state and
bounded windows only, so a replay of millions of events needs no more memory than one of thousands.

The result's `states` are the very `BatchState` values each service's `GET /batches/{id}` shows as `state`
(`state_json` renders them the same way), so "the audit at T equals what the services showed at T" is a plain
comparison.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from services.audit.checks import run_checks
from services.audit.closing import FamilyCloser
from services.audit.findings import TAMPER_CHECKS, CheckResult, FindingLog
from services.audit.flow import FlowBook
from services.audit.progress import replay_progress
from services.audit.reader import LogExtent, LogReader, ReplayWindow
from services.audit.records import LogRecord
from services.audit.reference import ReferenceBook
from services.audit.sla import SlaPolicy
from services.audit.tamper import DEFAULT_SOURCES, ChainVerifier, SourceChain
from services.audit.totals import Totals, compute_totals
from services.audit.tracker import BatchBook, BatchTrack, Transition, parse
from shared.domain.batch_state import BatchState
from shared.events.registry import BATCH_EVENT_TYPES
from shared.projections.batch_view import state_to_json
from shared.settings import Settings

TransitionHook = Callable[[Transition], None]
FULL_COLLECTION_EVERY = 100  # young collections between full ones while replaying (CPython's default: 10)
BATCH_TYPE_PREFIX = "org.aidtrail.batch."


@dataclass(frozen=True, slots=True)
class AuditOptions:
    """What to replay and how to judge it. `now` (for stuck SLAs) defaults to `as_of`, else the replay start."""

    as_of: datetime | None = None
    since: datetime | None = None
    now: datetime | None = None
    sla: SlaPolicy = field(default_factory=SlaPolicy)
    known_sources: tuple[str, ...] | None = DEFAULT_SOURCES
    anchors: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    reorder_window: int = 10_000
    duplicate_window: int = 10_000
    max_findings_per_check: int = 1000
    chains_only: bool = False
    progress: bool = False
    # Check, total and drop each batch family once all its batches are final (services/audit/closing.py):
    # flat memory, same checks and totals, but `tracks`/`states` then hold only the batches still open.
    summary_only: bool = False


@dataclass(slots=True)
class ReplayStats:
    records: int = 0
    batch_events: int = 0
    reference_events: int = 0
    unreadable: int = 0
    duplicates: int = 0
    skipped_partial: int = 0
    closed_batches: int = 0  # summary replays: checked and dropped before the end
    setup_seconds: float = 0.0  # connecting, finding partitions and offsets: not part of the throughput
    seconds: float = 0.0  # reading, verifying and folding every record

    @property
    def events_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "batch_events": self.batch_events,
            "reference_events": self.reference_events,
            "unreadable": self.unreadable,
            "duplicates_dropped": self.duplicates,
            "skipped_partial": self.skipped_partial,
            "closed_batches": self.closed_batches,
            "setup_seconds": round(self.setup_seconds, 3),
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.events_per_second, 1),
        }


@dataclass(slots=True)
class AuditResult:
    topic_prefix: str
    bootstrap: str
    options: AuditOptions
    started_at: datetime
    now: datetime
    extent: LogExtent
    stats: ReplayStats
    tracks: dict[str, BatchTrack]
    reference: ReferenceBook
    flow: FlowBook
    chains: dict[str, SourceChain]
    checks: list[CheckResult]
    totals: Totals

    @property
    def ok(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def states(self) -> dict[str, BatchState]:
        return {batch_id: track.state for batch_id, track in self.tracks.items() if track.state is not None}

    def state(self, batch_id: str) -> BatchState | None:
        track = self.tracks.get(batch_id)
        return track.state if track else None

    def state_json(self, batch_id: str) -> dict[str, Any] | None:
        """The same shape as a service's `GET /batches/{id}` `state`."""
        state = self.state(batch_id)
        return state_to_json(state) if state else None

    def check(self, name: str) -> CheckResult:
        found = next((check for check in self.checks if check.name == name), None)
        if found is None:
            raise KeyError(f"no check {name!r} in this result; checks: {', '.join(c.name for c in self.checks)}")
        return found

    @property
    def failed_checks(self) -> list[str]:
        return [check.name for check in self.checks if not check.passed]


class _Pipeline:
    """Routes each record of the merged log to the chain verifier, the fold or the reference book."""

    def __init__(self, settings: Settings, options: AuditOptions, hook: TransitionHook | None, now: datetime):
        mid_log = options.since is not None
        names = (*TAMPER_CHECKS, "events-readable") if options.chains_only else None
        self.settings = settings
        self.batch_topic, self.reference_topic = settings.batch_topic, settings.reference_topic  # built per call
        self.options = options
        self.hook = hook
        self.findings = FindingLog(options.max_findings_per_check, names)
        self.chains = ChainVerifier(
            self.findings,
            options.known_sources,
            options.reorder_window,
            options.duplicate_window,
            starts_mid_log=mid_log,
            anchors=options.anchors,
        )
        self.closer = (
            FamilyCloser(self.findings, options.sla, now, partial=mid_log)
            if options.summary_only and not options.chains_only
            else None
        )
        self.batches = BatchBook(self.findings, FlowBook(), starts_mid_log=mid_log, closer=self.closer)
        self.reference = ReferenceBook()
        self.stats = ReplayStats()

    def handle(self, record: LogRecord) -> None:
        self.stats.records += 1
        if record.envelope is None:
            self.stats.unreadable += 1
            self.findings.add("events-readable", f"record at {record.where} is unreadable: {record.error}")
            return
        if not self.chains.observe(record):
            self.stats.duplicates += 1
            return
        if self.options.chains_only:
            return
        if self._is_batch_event(record):
            self.stats.batch_events += 1
            transition = self.batches.apply(record)
            if transition is not None and self.hook is not None:
                self.hook(transition)
        else:
            self.stats.reference_events += 1
            payload = parse(record, self.findings)
            if payload is not None:
                self.reference.apply(payload)

    def _is_batch_event(self, record: LogRecord) -> bool:
        """Routed by type, not by topic, so an event on the wrong topic is still folded, and reported: on the
        wrong topic it is not ordered with the rest of its batch."""
        envelope = record.envelope
        assert envelope is not None
        is_batch = envelope.type in BATCH_EVENT_TYPES or envelope.type.startswith(BATCH_TYPE_PREFIX)
        expected = self.batch_topic if is_batch else self.reference_topic
        if record.topic != expected:
            self.findings.add(
                "events-readable",
                f"{envelope.type} {envelope.id} is on {record.topic}, not on {expected} (at {record.where})",
                [envelope.id],
                envelope.subject if is_batch else None,
            )
        return is_batch


async def replay(
    settings: Settings,
    as_of: datetime | None = None,
    progress: bool = False,
    options: AuditOptions | None = None,
    hook: TransitionHook | None = None,
    summary_only: bool = False,
) -> AuditResult:
    """Replay both topics up to the end offsets captured now (or to `as_of`) and check everything.
    `summary_only`: see AuditOptions (checks and totals in flat memory; only open batches kept)."""
    options = options or AuditOptions()
    if as_of is not None or progress or summary_only:
        options = replace(
            options,
            as_of=as_of or options.as_of,
            progress=progress or options.progress,
            summary_only=summary_only or options.summary_only,
        )
    started_at = datetime.now(UTC)
    pipeline = _Pipeline(settings, options, hook, _now(options, started_at))
    clock = time.perf_counter()
    window = ReplayWindow(since=options.since, until=options.as_of)
    async with LogReader(settings, [settings.batch_topic, settings.reference_topic], window) as reader:
        pipeline.stats.setup_seconds = time.perf_counter() - clock
        with replay_progress(options.progress, reader.extent.total) as advance, _heap_frozen():
            async for record in reader.records(advance):
                pipeline.handle(record)
        extent = reader.extent
    pipeline.stats.seconds = time.perf_counter() - clock - pipeline.stats.setup_seconds
    return _finish(settings, options, pipeline, started_at, extent)


def audit_records(
    settings: Settings,
    records: Iterable[LogRecord],
    options: AuditOptions | None = None,
    hook: TransitionHook | None = None,
) -> AuditResult:
    """The same audit over records already in merged log order, without Kafka: for unit tests and for
    auditing an exported copy of the log."""
    options = options or AuditOptions()
    started_at = datetime.now(UTC)
    pipeline = _Pipeline(settings, options, hook, _now(options, started_at))
    clock = time.perf_counter()
    with _heap_frozen():
        for record in records:
            pipeline.handle(record)
    pipeline.stats.seconds = time.perf_counter() - clock
    return _finish(settings, options, pipeline, started_at, LogExtent({}, ()))


@contextmanager
def _heap_frozen() -> Iterator[None]:
    """Keep what exists before the replay (modules, their classes and functions: most of the process's objects)
    out of the cycle collector's full passes while it runs. Why: each event leaves a few objects alive for a
    while (chain links in the duplicate window, batch states), so full collections keep coming, and each one
    walked the whole heap. Objects are still freed by reference counting; `unfreeze` hands the frozen ones back
    to the collector at the end. Full passes are also made rarer: what they walk is mostly the chains' duplicate
    windows (40,000 links) and the reader's buffered records, which all die by reference counting anyway, and
    that working set is larger in a long log (the buffers fill further), so each pass costs more there."""
    _FROZEN_REPLAYS.append(None)
    if len(_FROZEN_REPLAYS) == 1:  # replays overlap in the audit service: the first in sets, the last out restores
        _SAVED_THRESHOLDS[:] = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(_SAVED_THRESHOLDS[0], _SAVED_THRESHOLDS[1], max(_SAVED_THRESHOLDS[2], FULL_COLLECTION_EVERY))
    try:
        yield
    finally:
        _FROZEN_REPLAYS.pop()
        if not _FROZEN_REPLAYS:
            gc.set_threshold(*_SAVED_THRESHOLDS)
            gc.unfreeze()


_FROZEN_REPLAYS: list[None] = []
_SAVED_THRESHOLDS: list[int] = []


def _now(options: AuditOptions, started_at: datetime) -> datetime:
    """The moment stuck-batch SLAs are judged at; known before the replay, so families can close on the way."""
    return options.now or options.as_of or started_at


def _finish(
    settings: Settings, options: AuditOptions, pipeline: _Pipeline, started_at: datetime, extent: LogExtent
) -> AuditResult:
    now = _now(options, started_at)
    pipeline.stats.skipped_partial = pipeline.batches.skipped_partial
    pipeline.stats.closed_batches = len(pipeline.closer.closed) if pipeline.closer else 0
    chains = pipeline.chains.finish()
    tracks = pipeline.batches.tracks
    if not options.chains_only:
        run_checks(tracks, pipeline.findings, options.sla, now, partial=options.since is not None)
    return AuditResult(
        topic_prefix=settings.topic_prefix,
        bootstrap=settings.kafka_bootstrap,
        options=options,
        started_at=started_at,
        now=now,
        extent=extent,
        stats=pipeline.stats,
        tracks=tracks,
        reference=pipeline.reference,
        flow=pipeline.batches.flow,
        chains=chains,
        checks=pipeline.findings.checks(),
        totals=compute_totals(
            (track.state for track in tracks.values() if track.state is not None),
            into=pipeline.closer.totals if pipeline.closer else None,
        ),
    )
