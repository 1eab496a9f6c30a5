"""The self-contained HTML report: inline CSS and SVG only, so it can be mailed, archived and opened offline.

It shows the verdict, every check with the events that break it, the flow of quantities (Sankey diagram),
totals per donor and recipient, the service chains' heads, and each batch with a timeline of its phases.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from html import escape

from services.audit import svg
from services.audit.findings import CheckResult
from services.audit.replay import AuditResult
from services.audit.report_json import batch_count, iso
from services.audit.report_markdown import TOTAL_COLUMNS
from services.audit.totals import PartyTotals
from services.audit.tracker import BatchTrack

MAX_BATCHES = 300
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{margin-bottom:4px} h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0;font-size:13px} th,td{border:1px solid #ddd;padding:4px 8px}
th{background:#f4f4f4;text-align:left} td.n{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#1e7b34;font-weight:600}.fail{color:#b03a3a;font-weight:600}.warn{color:#b07d2b;font-weight:600}
.verdict{font-size:18px;padding:8px 12px;border-radius:6px;display:inline-block}
.ok{background:#e3f4e6}.bad{background:#fbe4e4} code{font-size:12px} details{margin:6px 0}
.meta{color:#555;font-size:13px} ul.findings{font-size:13px}
"""


def render(result: AuditResult) -> str:
    body = "".join(
        (
            _summary(result),
            _checks(result.checks),
            _flow(result),
            _totals("Totals per donor", "donor", result.totals.donors, result.reference.donor_name),
            _totals("Totals per recipient", "recipient", result.totals.recipients, result.reference.recipient_name),
            _chains(result),
            _batches(result),
        )
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>aidtrail audit: {escape(result.topic_prefix)}</title><style>{CSS}</style></head>"
        f"<body>{body}</body></html>"
    )


class Html(str):
    """Markup we generated ourselves; every other cell value is escaped, names from the log included."""

    __slots__ = ()


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]], numeric_from: int = 99) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    lines = []
    for row in rows:
        cells = []
        for index, value in enumerate(row):
            css = ' class="n"' if index >= numeric_from else ""
            cells.append(f"<td{css}>{_cell(value)}</td>")
        lines.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


def _cell(value: object) -> str:
    if isinstance(value, Html):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return escape(str(value)) if value not in (None, "") else "-"


def _summary(result: AuditResult) -> str:
    stats = result.stats
    verdict = "PASSED: every check holds" if result.ok else "FAILED: " + ", ".join(result.failed_checks)
    return (
        "<h1>aidtrail audit report</h1>"
        f'<p class="meta">Topics <code>{escape(result.topic_prefix)}.*</code> on {escape(result.bootstrap)}; '
        f"as of {escape(iso(result.options.as_of) or 'the end of the log')}; now {escape(iso(result.now) or '')}<br>"
        f"{stats.records:,} records replayed ({stats.batch_events:,} batch, {stats.reference_events:,} reference), "
        f"{stats.duplicates:,} exact duplicates dropped, {stats.seconds:.2f} s, {stats.events_per_second:,.0f} "
        f"events/s; {escape(batch_count(result))} batches</p>"
        f'<p class="verdict {"ok" if result.ok else "bad"}">{escape(verdict)}</p>'
    )


def _checks(checks: list[CheckResult]) -> str:
    rows = [
        (Html(f'<span class="{c.status}">{c.status.upper()}</span>'), c.spec.name, c.errors, c.warnings, c.spec.rule)
        for c in checks
    ]
    details = "".join(_check_details(check) for check in checks if check.findings)
    return f"<h2>Checks</h2>{_table(('status', 'check', 'errors', 'warnings', 'rule'), rows)}{details}"


def _check_details(check: CheckResult) -> str:
    items = "".join(
        f"<li><b>{escape(f.severity.value)}</b>: {escape(f.message)}"
        f"{' (' + ', '.join(f'<code>{escape(i)}</code>' for i in f.event_ids) + ')' if f.event_ids else ''}</li>"
        for f in check.findings
    )
    more = f"<li>... {check.errors + check.warnings - len(check.findings)} more</li>" if check.truncated else ""
    return (
        f"<details open><summary><b>{escape(check.spec.name)}</b>: {escape(check.spec.title)}</summary>"
        f'<ul class="findings">{items}{more}</ul></details>'
    )


def _flow(result: AuditResult) -> str:
    graph = result.flow.graph(result.reference)
    labels = {node["id"]: node["label"] for node in graph["nodes"]}
    rows = [(labels[link["source"]], labels[link["target"]], link["quantity"]) for link in graph["links"]]
    return f"<h2>Flow of quantities</h2>{svg.sankey(graph)}{_table(('from', 'to', 'quantity'), rows, 2)}"


def _totals(title: str, kind: str, totals: dict[str, PartyTotals], name: Callable[[str], str]) -> str:
    if not totals:
        return ""
    rows = [(name(ident), *(getattr(t, column) for column in TOTAL_COLUMNS)) for ident, t in sorted(totals.items())]
    return f"<h2>{escape(title)}</h2>{_table((kind, *TOTAL_COLUMNS), rows, 1)}"


def _chains(result: AuditResult) -> str:
    rows = [
        (source, chain.events, chain.last.sequence if chain.last else 0, chain.head_hash, chain.duplicates)
        for source, chain in sorted(result.chains.items())
    ]
    table = _table(("source", "events", "head sequence", "head hash", "duplicates dropped"), rows, 1)
    return f"<h2>Hash chains</h2><p class='meta'>Anchor these heads outside the log to detect truncation.</p>{table}"


def _batches(result: AuditResult) -> str:
    flagged = {f.batch_id for check in result.checks for f in check.findings if f.batch_id}
    ordered = sorted(result.tracks.values(), key=lambda t: (t.batch_id not in flagged, t.batch_id))[:MAX_BATCHES]
    rows = [_batch_row(track, result, track.batch_id in flagged) for track in ordered if track.state is not None]
    more = len(result.tracks) - len(ordered)
    note = f"<p class='meta'>{more:,} more batches are in the JSON report.</p>" if more > 0 else ""
    headers = ("batch", "status", "item", "delivered to", "confirmed", "finding", "timeline")
    return f"<h2>Batches</h2>{_table(headers, rows)}{note}"


def _batch_row(track: BatchTrack, result: AuditResult, flagged: bool) -> tuple[object, ...]:
    state = track.state
    assert state is not None
    points = dict(track.milestones)
    start = min(points.values()) if points else result.now
    end = max([*points.values(), start])
    recipient = result.reference.recipient_name(state.delivered_to_recipient_id)
    return (
        track.batch_id,
        state.status.value,
        state.item,
        recipient,
        state.confirmed_received,
        "yes" if flagged else "",
        Html(svg.milestones(points, start, end)) if points else "",
    )
