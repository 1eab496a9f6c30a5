"""Reports (JSON, Markdown, self-contained HTML with SVG) and SLA configuration."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import orjson
import pytest
from rich.console import Console

from services.audit.craft import CraftedLog, audit_offline
from services.audit.drills import run_drill
from services.audit.progress import replay_progress
from services.audit.replay import AuditOptions, AuditResult
from services.audit.report_html import render as render_html
from services.audit.report_json import dumps, report
from services.audit.report_markdown import render as render_markdown
from services.audit.scenario import clean_lifecycle
from services.audit.sla import DEFAULT_SLA_HOURS, SlaError, SlaPolicy
from shared.events import reference_events as ref
from shared.settings import Settings


def audited(hostile_name: bool = False) -> AuditResult:
    log = CraftedLog(Settings(topic_prefix="unit"))
    clean_lifecycle(log)
    if hostile_name:
        log.emit("pledge", "donor-jingdong", ref.DonorRegistered(donor_id="donor-jingdong", name="<script>x</script>"))
    run_drill("transit-conserved", log, with_parties=False)
    return audit_offline(log, AuditOptions(now=log.clock))


def test_json_report_holds_checks_states_totals_flow_and_chains() -> None:
    document = orjson.loads(dumps(report(audited())))
    assert document["ok"] is False and document["failed_checks"] == ["fold-accepts-all", "transit-conserved"]
    assert {c["name"]: c["status"] for c in document["checks"]}["chain-gap"] == "pass"
    state = document["batches"]["b-n95-001-c1"]["state"]
    assert state["status"] == "confirmed" and state["free"] == 0
    assert document["totals"]["donors"]["donor-jingdong"]["pledged"] == 1600
    assert set(document["chains"]) == {"pledge", "warehouse", "dispatch", "recipient"}
    assert document["stats"]["events_per_second"] > 0


def test_markdown_report_names_failed_checks_and_their_events() -> None:
    result = audited()
    text = render_markdown(result)
    assert text.startswith("# aidtrail audit report")
    assert "**FAILED**: fold-accepts-all, transit-conserved" in text
    assert "| transit-conserved | FAIL | 1 | 0 |" in text
    bad = result.check("transit-conserved").findings[0].event_ids[0]
    assert f"`{bad}`" in text
    assert "## Totals per donor" in text and "| Jingdong Logistics | 1600 |" in text


def test_html_report_is_self_contained_with_a_sankey_and_timelines() -> None:
    html = render_html(audited())
    assert "<svg" in html and 'aria-label="Flow of quantities from donors to recipients"' in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "no external assets"
    assert "<script" not in html and "<link" not in html
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    assert len(svgs) >= 3  # the flow and at least two batch timelines
    for picture in svgs:
        ET.fromstring(picture)  # well-formed XML
    assert "Xiantao relay hub" in svgs[0] and "Jinyintan Hospital" in svgs[0]


def test_html_report_escapes_names_from_the_log() -> None:
    html = render_html(audited(hostile_name=True))
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html


def test_sla_defaults_and_overrides() -> None:
    assert SlaPolicy().limit("received") == 48 and SlaPolicy().limit("picked") == 24
    policy = SlaPolicy.load(overrides=["in_transit=96", "delivered=off"])
    assert policy.limit("in_transit") == 96 and policy.limit("delivered") is None
    assert dict(SlaPolicy().hours) == DEFAULT_SLA_HOURS


def test_sla_from_toml_and_json_files(tmp_path: Path) -> None:
    toml = tmp_path / "sla.toml"
    toml.write_text("[sla_hours]\nreceived = 12\npicked = 6\n")
    assert SlaPolicy.load(toml).limit("received") == 12
    flat = tmp_path / "sla.json"
    flat.write_text(json.dumps({"in_transit": 24}))
    assert SlaPolicy.load(flat, ["in_transit=30"]).limit("in_transit") == 30


@pytest.mark.parametrize(
    ("content", "override", "message"),
    [
        ('{"sla_hours": {"teleported": 3}}', None, "unknown phase 'teleported'"),
        ('{"received": "soon"}', None, "must be a number of hours"),
        ("not json", None, "is not valid JSON"),
        ("{}", "received", "must look like PHASE=HOURS"),
        ("{}", "picked=-1", "must not be negative"),
    ],
)
def test_sla_errors_say_what_is_wrong(tmp_path: Path, content: str, override: str | None, message: str) -> None:
    path = tmp_path / "sla.json"
    path.write_text(content)
    with pytest.raises(SlaError, match=re.escape(message)):
        SlaPolicy.load(path, [override] if override else [])


def test_progress_bar_shows_events_per_second_on_a_terminal_only() -> None:
    screen = io.StringIO()
    with replay_progress(True, 1000, Console(file=screen, force_terminal=True, width=120)) as advance:
        for _ in range(10):
            advance(100)
    assert "events/s" in screen.getvalue() and "replaying" in screen.getvalue()
    silent = io.StringIO()
    with replay_progress(True, 1000, Console(file=silent, force_terminal=False)) as advance:
        advance(1000)
    with replay_progress(False, 1000, Console(file=silent, force_terminal=True)) as advance:
        advance(1000)
    assert silent.getvalue() == ""
