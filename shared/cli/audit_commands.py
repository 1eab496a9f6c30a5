"""`aidtrail audit ...`: replay the event log read-only, check it, and write reports an auditor can publish.

Exit codes, so scripts and CI can rely on them: 0 every check holds, 1 a check failed (or the batch is
unknown), 2 the audit could not run (broker unreachable, bad option).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from services.audit.batch_detail import BatchDetail, batch_detail
from services.audit.epcis import export_epcis
from services.audit.findings import CheckResult
from services.audit.lineage import LineageNode
from services.audit.reader import ReplayError
from services.audit.replay import AuditOptions, AuditResult, replay
from services.audit.report_html import render as render_html
from services.audit.report_json import chains_report, dumps, report
from services.audit.report_markdown import render as render_markdown
from services.audit.sla import SlaError, SlaPolicy
from services.audit.tamper import DEFAULT_SOURCES
from shared.settings import Settings, get_settings

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
SHOWN_FINDINGS = 10
T = TypeVar("T")

audit_app = typer.Typer(
    no_args_is_help=True,
    help="Replay the event log read-only and check every quantity, designation and hash chain.",
)
out = Console()
err = Console(stderr=True)

_BOOTSTRAP = typer.Option(None, "--bootstrap", help="Kafka bootstrap servers (default: AIDTRAIL_KAFKA_BOOTSTRAP).")
_PREFIX = typer.Option(None, "--topic-prefix", help="Topic prefix (default: AIDTRAIL_TOPIC_PREFIX or 'aidtrail').")
_AS_OF = typer.Option(None, "--as-of", help="Replay up to this moment (ISO 8601; UTC if no offset).")
_JSON = typer.Option(None, "--json", help="Write the JSON report here.")
_SOURCES = typer.Option(
    list(DEFAULT_SOURCES), "--source", help="A service whose hash chain is expected (repeat for each)."
)
_PROGRESS = typer.Option(True, "--progress/--no-progress", help="Progress bar with events/s (only on a terminal).")


def _settings(bootstrap: str | None, topic_prefix: str | None) -> Settings:
    updates = {"kafka_bootstrap": bootstrap, "topic_prefix": topic_prefix}
    return get_settings().model_copy(update={k: v for k, v in updates.items() if v})


def _moment(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        example = "e.g. 2020-02-01T12:00:00Z"
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time, {example}", param_hint=option) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _anchors(texts: list[str]) -> dict[str, tuple[int, str]]:
    anchors: dict[str, tuple[int, str]] = {}
    for text in texts:
        source, _, head = text.partition("=")
        sequence, _, digest = head.partition(":")
        if not (source and sequence.isdigit() and len(digest) == 64):
            raise typer.BadParameter(f"{text!r} must look like SOURCE=SEQUENCE:SHA256HEX", param_hint="--anchor")
        anchors[source] = (int(sequence), digest)
    return anchors


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except ReplayError as exc:
        err.print(f"[red]cannot audit:[/] {escape(str(exc))}")
        raise typer.Exit(EXIT_ERROR) from None


def _write(path: Path | None, data: bytes | str, what: str) -> None:
    if path is None:
        return
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    err.print(f"{what} written to {path}")


@audit_app.command("replay")
def replay_command(
    as_of: str | None = _AS_OF,
    since: str | None = typer.Option(None, "--since", help="Start at this moment instead of offset zero."),
    now: str | None = typer.Option(None, "--now", help="'Now' for stuck-batch SLAs (default: --as-of or now)."),
    json_path: Path | None = _JSON,
    markdown_path: Path | None = typer.Option(None, "--markdown", help="Write the Markdown report here."),
    html_path: Path | None = typer.Option(None, "--html", help="Write the self-contained HTML report here."),
    sla_file: Path | None = typer.Option(None, "--sla-file", help="TOML or JSON file of SLA hours per phase."),
    sla: list[str] = typer.Option([], "--sla", help="Override one SLA, e.g. --sla received=12 (or =off)."),
    source: list[str] = _SOURCES,
    anchor: list[str] = typer.Option([], "--anchor", help="Anchored chain head SOURCE=SEQUENCE:HASH."),
    bootstrap: str | None = _BOOTSTRAP,
    topic_prefix: str | None = _PREFIX,
    progress: bool = _PROGRESS,
    summary: bool = typer.Option(
        False,
        "--summary",
        help="Flat memory for long logs: check and drop each batch family once it is final; "
        "reports then detail only the batches still open.",
    ),
) -> None:
    """Replay everything (or as of a moment), run every check, write reports; exit 1 if any check fails."""
    try:
        policy = SlaPolicy.load(sla_file, sla)
    except SlaError as exc:
        raise typer.BadParameter(str(exc), param_hint="--sla/--sla-file") from None
    options = AuditOptions(
        as_of=_moment(as_of, "--as-of"),
        since=_moment(since, "--since"),
        now=_moment(now, "--now"),
        sla=policy,
        known_sources=tuple(source),
        anchors=_anchors(anchor),
        progress=progress,
        summary_only=summary,
    )
    result = _run(replay(_settings(bootstrap, topic_prefix), options=options))
    _write(json_path, dumps(report(result)), "JSON report")
    _write(markdown_path, render_markdown(result), "Markdown report")
    _write(html_path, render_html(result), "HTML report")
    _print_checks(result.checks)
    _print_throughput(result)
    raise typer.Exit(EXIT_OK if result.ok else EXIT_FINDINGS)


@audit_app.command("verify")
def verify_command(
    as_of: str | None = _AS_OF,
    json_path: Path | None = _JSON,
    source: list[str] = _SOURCES,
    anchor: list[str] = typer.Option([], "--anchor", help="Anchored chain head SOURCE=SEQUENCE:HASH."),
    bootstrap: str | None = _BOOTSTRAP,
    topic_prefix: str | None = _PREFIX,
    progress: bool = _PROGRESS,
) -> None:
    """Verify every service's hash chain only; exit 1 on a gap, reordering, changed or injected event."""
    options = AuditOptions(
        as_of=_moment(as_of, "--as-of"),
        known_sources=tuple(source),
        anchors=_anchors(anchor),
        chains_only=True,
        progress=progress,
    )
    result = _run(replay(_settings(bootstrap, topic_prefix), options=options))
    document = chains_report(result)
    _write(json_path, dumps(document), "JSON chain report")
    _print_chains(result)
    _print_checks([check for check in result.checks if check.spec.family == "tamper"])
    raise typer.Exit(EXIT_OK if document["ok"] else EXIT_FINDINGS)


@audit_app.command("batch")
def batch_command(
    batch_id: str = typer.Argument(..., help="The batch to show."),
    as_of: str | None = _AS_OF,
    json_path: Path | None = _JSON,
    bootstrap: str | None = _BOOTSTRAP,
    topic_prefix: str | None = _PREFIX,
) -> None:
    """One batch: its timeline, chain of custody, lineage tree and findings; exit 1 if it is unknown."""
    options = AuditOptions(as_of=_moment(as_of, "--as-of"))
    detail = _run(batch_detail(_settings(bootstrap, topic_prefix), batch_id, options))
    if detail is None:
        err.print(f"[red]batch {escape(batch_id)} has no events in the log[/] (check the id, the prefix and --as-of)")
        raise typer.Exit(EXIT_FINDINGS)
    _write(json_path, dumps(detail.to_json()), "JSON batch report")
    _print_batch(detail)


@audit_app.command("epcis")
def epcis_command(
    out_path: Path = typer.Option(..., "--out", help="Where to write the EPCIS 2.0 JSON-LD document."),
    as_of: str | None = _AS_OF,
    bootstrap: str | None = _BOOTSTRAP,
    topic_prefix: str | None = _PREFIX,
    progress: bool = _PROGRESS,
) -> None:
    """Export the batch log as an EPCIS 2.0 JSON-LD document (ObjectEvents, TransformationEvents for splits)."""
    options = AuditOptions(as_of=_moment(as_of, "--as-of"), progress=progress)
    with out_path.open("wb") as handle:
        result, count = _run(export_epcis(_settings(bootstrap, topic_prefix), handle, options))
    err.print(f"{count:,} EPCIS events from {result.stats.batch_events:,} batch events written to {out_path}")
    if not result.ok:
        failed = ", ".join(result.failed_checks)
        err.print(f"[yellow]note:[/] the log fails checks {failed}; run `aidtrail audit replay` for details")


# --- printing -------------------------------------------------------------------------------------------------


def _print_checks(checks: list[CheckResult]) -> None:
    table = Table(title="Checks")
    for column in ("check", "status", "errors", "warnings"):
        table.add_column(column)
    colours = {"pass": "green", "fail": "red", "warn": "yellow"}
    for check in checks:
        status = f"[{colours[check.status]}]{check.status.upper()}[/]"
        table.add_row(check.spec.name, status, str(check.errors), str(check.warnings))
    out.print(table)
    for check in checks:
        for finding in check.findings[:SHOWN_FINDINGS]:
            out.print(f"[bold]{check.spec.name}[/] {finding.severity.value}: {escape(finding.message)}")
        if len(check.findings) > SHOWN_FINDINGS or check.truncated:
            out.print(f"  ... {check.errors + check.warnings - SHOWN_FINDINGS} more {check.spec.name} finding(s)")


def _print_throughput(result: AuditResult) -> None:
    if result.extent.missing_topics:
        err.print(
            f"[yellow]warning:[/] topics not found: {', '.join(result.extent.missing_topics)} (check --topic-prefix)"
        )
    stats = result.stats
    out.print(
        f"{stats.records:,} records, {len(result.tracks):,} batches, {stats.duplicates:,} duplicates dropped in "
        f"{stats.seconds:.2f} s ({stats.events_per_second:,.0f} events/s)"
    )


def _print_chains(result: AuditResult) -> None:
    table = Table(title="Hash chains")
    for column in ("source", "events", "head sequence", "head hash", "duplicates dropped"):
        table.add_column(column)
    for source, chain in sorted(result.chains.items()):
        head = str(chain.last.sequence if chain.last else 0)
        table.add_row(source, str(chain.events), head, chain.head_hash, str(chain.duplicates))
    out.print(table)


def _print_batch(detail: BatchDetail) -> None:
    state = detail.state
    out.print(f"[bold]{detail.batch_id}[/] {state['status']} - {state['item']} from {state['donor_id']}")
    timeline = Table(title="Timeline")
    for column in ("time", "event", "source#seq", "actor", "site", "what"):
        timeline.add_column(column)
    for item in detail.timeline:
        what = item.summary + (f" [red](refused: {escape(item.refused)})[/]" if item.refused else "")
        timeline.add_row(item.time, item.type, f"{item.source}#{item.sequence}", item.actor, item.site or "-", what)
    out.print(timeline)
    custody = Table(title="Chain of custody")
    for column in ("holder", "kind", "where", "from", "to"):
        custody.add_column(column)
    for segment in detail.custody:
        custody.add_row(segment.holder, segment.holder_kind, segment.site or "-", segment.start, segment.end or "now")
    out.print(custody)
    if detail.lineage is not None:
        out.print(_tree(detail.lineage, Tree("Lineage")))
    for finding in detail.findings:
        out.print(f"[red]{finding.check}[/]: {escape(finding.message)}")


def _tree(node: LineageNode, parent: Tree) -> Tree:
    mark = "[bold]> [/]" if node.selected else ""
    to = f" -> {node.delivered_to}: {node.confirmed} confirmed" if node.delivered_to else ""
    branch = parent.add(f"{mark}{node.batch_id} {node.status} ({node.quantity}){to}")
    for child in node.children:
        _tree(child, branch)
    return parent
