"""The machine-readable report: everything the Markdown and HTML reports show, as one JSON document."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from services.audit.replay import AuditResult
from services.audit.tracker import BatchTrack
from shared.events.envelope import format_time
from shared.projections.batch_view import state_to_json


def iso(moment: datetime | None) -> str | None:
    return format_time(moment) if moment else None


def report(result: AuditResult, include_batches: bool = True) -> dict[str, Any]:
    options = result.options
    body: dict[str, Any] = {
        "report": "aidtrail audit",
        "topic_prefix": result.topic_prefix,
        "bootstrap": result.bootstrap,
        "started_at": iso(result.started_at),
        "as_of": iso(options.as_of),
        "since": iso(options.since),
        "now": iso(result.now),
        "ok": result.ok,
        "failed_checks": result.failed_checks,
        "stats": result.stats.to_json(),
        "extent": {"partitions": result.extent.offsets, "missing_topics": list(result.extent.missing_topics)},
        "sla_hours": options.sla.to_json(),
        "checks": [check.to_json() for check in result.checks],
        "chains": {source: chain.summary() for source, chain in sorted(result.chains.items())},
        "totals": result.totals.to_json(),
        "flow": result.flow.graph(result.reference),
        "reference": result.reference.to_json(),
    }
    if include_batches:
        body["batches"] = {batch_id: batch_json(track) for batch_id, track in sorted(result.tracks.items())}
    return body


def batch_count(result: AuditResult) -> str:
    """A summary replay drops closed batch families, so a bare count of `tracks` would undercount."""
    closed = result.stats.closed_batches
    if not closed:
        return f"{len(result.tracks):,}"
    return f"{len(result.tracks) + closed:,} ({len(result.tracks):,} still open; {closed:,} closed and summarised)"


def chains_report(result: AuditResult) -> dict[str, Any]:
    """What `verify` shows: the chains and the tamper checks only."""
    return {
        "report": "aidtrail chain verification",
        "topic_prefix": result.topic_prefix,
        "as_of": iso(result.options.as_of),
        "ok": all(check.passed for check in result.checks if check.spec.family == "tamper"),
        "stats": result.stats.to_json(),
        "chains": {source: chain.summary() for source, chain in sorted(result.chains.items())},
        "checks": [check.to_json() for check in result.checks if check.spec.family == "tamper"],
    }


def batch_json(track: BatchTrack) -> dict[str, Any]:
    return {
        "state": state_to_json(track.state) if track.state else None,
        "phase": track.phase,
        "phase_since": iso(track.phase_since),
        "milestones": {phase: format_time(moment) for phase, moment in track.milestones.items()},
        "hub_arrivals": track.hub_arrivals,
        "events": track.events,
        "refused": track.refused,
        "last_event_id": track.last_event_id,
    }


def dumps(document: dict[str, Any]) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS)
