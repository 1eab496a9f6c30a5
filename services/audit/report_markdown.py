"""The Markdown report: what an auditor pastes into an issue or a publication, readable without tools."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from services.audit.findings import CheckResult
from services.audit.replay import AuditResult
from services.audit.report_json import batch_count, iso
from services.audit.totals import PartyTotals

MAX_BATCH_ROWS = 500
TOTAL_COLUMNS = ("pledged", "received", "shortfall", "rejected", "written_off", "delivered", "confirmed", "damaged")


def _cell(value: object) -> str:
    return str(value if value is not None else "-").replace("|", "\\|").replace("\n", " ")


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines.extend("| " + " | ".join(_cell(value) for value in row) + " |" for row in rows)
    return lines


def render(result: AuditResult) -> str:
    sections = [
        _summary(result),
        _checks(result.checks),
        _findings(result.checks),
        _chains(result),
        _totals("Totals per donor", "donor", result.totals.donors, result.reference.donor_name),
        _totals("Totals per recipient", "recipient", result.totals.recipients, result.reference.recipient_name),
        _flow(result),
        _batches(result),
    ]
    return "\n\n".join("\n".join(section) for section in sections if section) + "\n"


def _summary(result: AuditResult) -> list[str]:
    stats = result.stats
    failed = result.failed_checks
    verdict = "**PASSED**: every check holds" if result.ok else f"**FAILED**: {', '.join(failed)}"
    return [
        "# aidtrail audit report",
        "",
        f"- Log: topics `{result.topic_prefix}.*` on `{result.bootstrap}`",
        f"- As of: {iso(result.options.as_of) or 'the end of the log'}; now (for SLAs): {iso(result.now)}",
        f"- Replay: {stats.records:,} records ({stats.batch_events:,} batch events, {stats.reference_events:,} "
        f"reference events), {stats.duplicates:,} exact duplicates dropped, {stats.seconds:.2f} s, "
        f"{stats.events_per_second:,.0f} events/s",
        f"- Batches: {batch_count(result)}",
        *([f"- Missing topics: {', '.join(result.extent.missing_topics)}"] if result.extent.missing_topics else []),
        f"- Result: {verdict}",
    ]


def _checks(checks: list[CheckResult]) -> list[str]:
    rows = [(c.spec.name, c.status.upper(), c.errors, c.warnings, c.spec.rule) for c in checks]
    return ["## Checks", "", *table(("check", "status", "errors", "warnings", "rule"), rows)]


def _findings(checks: list[CheckResult]) -> list[str]:
    lines = ["## Findings"]
    for check in checks:
        if not check.findings:
            continue
        lines += ["", f"### {check.spec.name}: {check.spec.title} ({check.errors} errors, {check.warnings} warnings)"]
        for finding in check.findings:
            ids = ", ".join(f"`{event_id}`" for event_id in finding.event_ids) or "no event id"
            lines.append(f"- {finding.severity.value}: {finding.message} (events: {ids})")
        if check.truncated:
            lines.append(f"- ... {check.errors + check.warnings - len(check.findings)} more not listed")
    return lines if len(lines) > 1 else ["## Findings", "", "None."]


def _chains(result: AuditResult) -> list[str]:
    rows = [
        (source, chain.events, chain.last.sequence if chain.last else 0, f"`{chain.head_hash}`", chain.duplicates)
        for source, chain in sorted(result.chains.items())
    ]
    heading = ["## Hash chains", "", "Anchor these heads outside the log to make truncation detectable.", ""]
    return heading + table(("source", "events", "head sequence", "head hash", "duplicates dropped"), rows)


def _totals(title: str, kind: str, totals: dict[str, PartyTotals], name: Callable[[str], str]) -> list[str]:
    rows = [(name(ident), *(getattr(t, column) for column in TOTAL_COLUMNS)) for ident, t in sorted(totals.items())]
    return [f"## {title}", "", *table((kind, *TOTAL_COLUMNS), rows)] if rows else []


def _flow(result: AuditResult) -> list[str]:
    graph = result.flow.graph(result.reference)
    labels = {node["id"]: node["label"] for node in graph["nodes"]}
    rows = [(labels[link["source"]], labels[link["target"]], link["quantity"]) for link in graph["links"]]
    return ["## Flow of quantities", "", *table(("from", "to", "quantity"), rows)] if rows else []


def _batches(result: AuditResult) -> list[str]:
    rows = []
    for batch_id, track in sorted(result.tracks.items())[:MAX_BATCH_ROWS]:
        state = track.state
        if state is None:
            continue
        who = (state.item, state.donor_id, iso(track.phase_since))
        recipients = (state.designated_recipient_id, state.delivered_to_recipient_id, state.confirmed_received)
        rows.append((batch_id, state.status.value, *who, *recipients))
    headers = ("batch", "status", "item", "donor", "since", "designated to", "delivered to", "confirmed")
    more = len(result.tracks) - MAX_BATCH_ROWS
    tail = [f"\n... and {more} more in the JSON report"] if more > 0 else []
    return ["## Batches", "", *table(headers, rows), *tail]
