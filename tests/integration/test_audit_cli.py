"""`aidtrail audit ...` through a Typer test runner against the real broker: exit 0 on a clean log, 1 when a
check fails, 2 when the audit cannot run; reports are written where asked."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner, Result

from services.audit.craft import CraftedLog
from services.audit.drills import run_drill
from services.audit.scenario import Lifecycle, clean_lifecycle
from shared.cli.audit_commands import audit_app
from shared.events.envelope import format_time
from shared.settings import Settings
from tests.unit.test_audit_epcis import validate_document

pytestmark = pytest.mark.kafka


async def cli(*args: str) -> Result:
    """Typer runs asyncio.run itself, so it gets a thread of its own, away from the test's event loop."""
    return await asyncio.to_thread(CliRunner().invoke, audit_app, list(args))


async def published_lifecycle(kafka_bootstrap: str, topic_prefix: str) -> tuple[CraftedLog, Lifecycle]:
    log = CraftedLog(Settings(topic_prefix=topic_prefix, kafka_bootstrap=kafka_bootstrap))
    life = clean_lifecycle(log)
    await log.publish()
    return log, life


def where(log: CraftedLog) -> list[str]:
    return ["--bootstrap", log.settings.kafka_bootstrap, "--topic-prefix", log.settings.topic_prefix]


async def test_replay_exits_zero_on_a_clean_log_and_writes_reports(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    log, _ = await published_lifecycle(kafka_bootstrap, topic_prefix)
    json_path, md_path, html_path = tmp_path / "a.json", tmp_path / "a.md", tmp_path / "a.html"
    result = await cli(
        "replay",
        *where(log),
        "--now",
        format_time(log.clock),
        "--no-progress",
        "--json",
        str(json_path),
        "--markdown",
        str(md_path),
        "--html",
        str(html_path),
    )
    assert result.exit_code == 0, result.output
    assert orjson.loads(json_path.read_bytes())["ok"] is True
    assert "**PASSED**" in md_path.read_text()
    assert "<svg" in html_path.read_text()
    assert "events/s" in result.output


async def test_replay_exits_one_when_a_check_fails(kafka_bootstrap: str, topic_prefix: str) -> None:
    log = CraftedLog(Settings(topic_prefix=topic_prefix, kafka_bootstrap=kafka_bootstrap))
    drill = run_drill("transit-conserved", log)
    await log.publish()
    result = await cli("replay", *where(log), "--now", format_time(drill.now), "--no-progress")
    assert result.exit_code == 1, result.output
    assert "transit-conserved" in result.output and "FAIL" in result.output


async def test_stuck_sla_options_decide_the_exit_code(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> None:
    log = CraftedLog(Settings(topic_prefix=topic_prefix, kafka_bootstrap=kafka_bootstrap))
    drill = run_drill("no-stuck-batches", log)
    await log.publish()
    now = ["--now", format_time(drill.now), "--no-progress"]
    assert (await cli("replay", *where(log), *now)).exit_code == 1
    assert (await cli("replay", *where(log), *now, "--sla", "received=72")).exit_code == 0
    sla_file = tmp_path / "sla.toml"
    sla_file.write_text("[sla_hours]\nreceived = 100\n")
    assert (await cli("replay", *where(log), *now, "--sla-file", str(sla_file))).exit_code == 0
    bad = await cli("replay", *where(log), *now, "--sla", "teleported=3")
    assert bad.exit_code == 2 and "unknown phase" in bad.output


async def test_verify_exits_one_on_tampering_and_zero_on_intact_chains(kafka_bootstrap: str, topic_prefix: str) -> None:
    log, _ = await published_lifecycle(kafka_bootstrap, topic_prefix)
    assert (await cli("verify", *where(log), "--no-progress")).exit_code == 0
    tampered = CraftedLog(Settings(topic_prefix=f"{topic_prefix}x", kafka_bootstrap=kafka_bootstrap))
    other = clean_lifecycle(tampered)
    tampered.change_payload(other.id("delivered"), quantity=599)
    await tampered.publish()
    result = await cli("verify", *where(tampered), "--no-progress")
    assert result.exit_code == 1 and "chain-changed-payload" in result.output


async def test_batch_shows_timeline_custody_and_lineage(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    log, life = await published_lifecycle(kafka_bootstrap, topic_prefix)
    out = tmp_path / "batch.json"
    result = await cli("batch", life.child, *where(log), "--json", str(out))
    assert result.exit_code == 0, result.output
    assert "Timeline" in result.output and "Chain of custody" in result.output and "Lineage" in result.output
    detail = orjson.loads(out.read_bytes())
    assert detail["lineage"]["batch_id"] == life.root and len(detail["timeline"]) == 8
    assert (await cli("batch", "b-nope", *where(log))).exit_code == 1


async def test_epcis_writes_a_valid_document(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> None:
    log, _ = await published_lifecycle(kafka_bootstrap, topic_prefix)
    out = tmp_path / "log.jsonld"
    result = await cli("epcis", "--out", str(out), *where(log), "--no-progress")
    assert result.exit_code == 0, result.output
    assert validate_document(orjson.loads(out.read_bytes())) == []


async def test_bad_time_is_a_usage_error(kafka_bootstrap: str) -> None:
    result = await cli("replay", "--bootstrap", kafka_bootstrap, "--as-of", "yesterday")
    assert result.exit_code == 2 and "ISO 8601" in result.output


async def test_unreachable_broker_exits_two() -> None:
    result = await cli("verify", "--bootstrap", "127.0.0.1:1", "--topic-prefix", "nowhere", "--no-progress")
    assert result.exit_code == 2 and "cannot audit" in result.output


async def test_summary_replay_gives_the_same_verdict_and_says_how_many_batches_it_closed(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    log, _ = await published_lifecycle(kafka_bootstrap, topic_prefix)
    full_json, summary_json, summary_md = tmp_path / "full.json", tmp_path / "summary.json", tmp_path / "summary.md"
    now = ["--now", format_time(log.clock), "--no-progress"]
    full = await cli("replay", *where(log), *now, "--json", str(full_json))
    summary = await cli(
        "replay", *where(log), *now, "--summary", "--json", str(summary_json), "--markdown", str(summary_md)
    )
    assert (full.exit_code, summary.exit_code) == (0, 0), summary.output
    full_report, summary_report = orjson.loads(full_json.read_bytes()), orjson.loads(summary_json.read_bytes())
    assert summary_report["checks"] == full_report["checks"]
    assert summary_report["totals"] == full_report["totals"]
    closed = summary_report["stats"]["closed_batches"]
    assert closed > 0 and len(summary_report["batches"]) + closed == len(full_report["batches"])
    assert f"{closed:,} closed and summarised" in summary_md.read_text()


async def test_summary_replay_still_exits_one_when_a_check_fails(kafka_bootstrap: str, topic_prefix: str) -> None:
    log = CraftedLog(Settings(topic_prefix=topic_prefix, kafka_bootstrap=kafka_bootstrap))
    drill = run_drill("transit-conserved", log)
    await log.publish()
    result = await cli("replay", *where(log), "--now", format_time(drill.now), "--no-progress", "--summary")
    assert result.exit_code == 1, result.output
    assert "transit-conserved" in result.output and "FAIL" in result.output
