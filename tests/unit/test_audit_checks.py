"""Each reconciliation check is broken by a crafted log (services/audit/drills.py) and names the events that
break it; a clean log passes every check. Offline: the same drills run against Kafka in the integration suite."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from services.audit import drills
from services.audit.craft import CraftedLog, audit_offline
from services.audit.drills import DRILLS, run_drill
from services.audit.findings import Severity
from services.audit.replay import AuditOptions
from services.audit.scenario import DONOR, HOSPITAL, clean_lifecycle
from services.audit.sla import SlaPolicy
from shared.events import batch_events as ev
from shared.settings import Settings


def new_log() -> CraftedLog:
    return CraftedLog(Settings(topic_prefix="unit"))


def failing(log: CraftedLog, **options: object) -> set[str]:
    result = audit_offline(log, AuditOptions(**options))  # type: ignore[arg-type]
    return set(result.failed_checks)


def test_clean_lifecycle_passes_every_check() -> None:
    log = new_log()
    clean_lifecycle(log)
    result = audit_offline(log, AuditOptions(now=log.clock))
    assert result.ok, [f.message for c in result.checks for f in c.findings]
    assert [c.status for c in result.checks if c.status != "pass"] == []


@pytest.mark.parametrize("check", sorted(DRILLS))
def test_each_check_is_broken_by_its_drill(check: str) -> None:
    log = new_log()
    drill = run_drill(check, log)
    result = audit_offline(log, AuditOptions(now=drill.now))
    assert set(result.failed_checks) == drill.failing
    named = {event_id for finding in result.check(check).findings for event_id in finding.event_ids}
    assert set(drill.event_ids) <= named


def test_fold_refusal_is_classified_under_the_rule_it_breaks() -> None:
    log = new_log()
    drill = run_drill("transit-conserved", log)
    result = audit_offline(log, AuditOptions(now=drill.now))
    [finding] = result.check("transit-conserved").findings
    assert "refused by the fold" in finding.message and "delivered must be 600, not 590" in finding.message


def test_stuck_threshold_is_configurable() -> None:
    log = new_log()
    drill = run_drill("no-stuck-batches", log)
    assert "no-stuck-batches" in failing(log, now=drill.now)
    relaxed = SlaPolicy.load(overrides=["received=72"])
    assert "no-stuck-batches" not in failing(log, now=drill.now, sla=relaxed)
    assert "no-stuck-batches" not in failing(log, now=drill.now - timedelta(hours=2))


def test_redesignation_with_an_approver_honours_the_designation() -> None:
    log = new_log()
    life = clean_lifecycle(log, root="b-redesignated")
    # a second pledge, redesignated before allocation with a named approver, goes to the new recipient
    drills.pledge(log, "b-2", 500, designated=HOSPITAL)
    drills.receive(log, "b-2", 500)
    drills.inspect(log, "b-2", 500)
    log.emit(
        "warehouse",
        "b-2",
        ev.BatchRedesignated(
            from_recipient_id=HOSPITAL,
            to_recipient_id="rcp-other",
            approved_by="Hubei Red Cross: director Zhang",
            reason="Jinyintan's need was met",
        ),
    )
    drills.allocate(log, "b-2", "al-b2", 500, recipient="rcp-other")
    drills.picked_and_dispatched(log, "b-2", "al-b2", 500, "sh-b2")
    drills.deliver(log, "b-2", "sh-b2", 500, recipient="rcp-other")
    drills.confirm(log, "b-2", 500, recipient="rcp-other")
    result = audit_offline(log, AuditOptions(now=log.clock))
    assert result.ok, result.failed_checks
    assert result.totals.recipients["rcp-other"].confirmed == 500
    assert result.state(life.child) is not None


def test_receipt_discrepancy_with_a_reason_is_a_warning_not_a_failure() -> None:
    log = new_log()
    drills.in_stock(log, "b-1", 600)
    drills.allocate(log, "b-1", "al-1", 600)
    drills.picked_and_dispatched(log, "b-1", "al-1", 600, "sh-1")
    drills.deliver(log, "b-1", "sh-1", 600)
    log.emit(
        "recipient",
        "b-1",
        ev.ReceiptConfirmed(
            recipient_id=HOSPITAL,
            quantity_received=590,
            signed_by="nurse Wang",
            discrepancy_reason="one carton missing on arrival",
        ),
    )
    result = audit_offline(log, AuditOptions(now=log.clock))
    check = result.check("receipt-conserved")
    assert result.ok and check.status == "warn"
    assert check.findings[0].severity is Severity.WARNING


def test_totals_per_donor_and_recipient() -> None:
    log = new_log()
    clean_lifecycle(log)
    totals = audit_offline(log, AuditOptions(now=log.clock)).totals
    donor = totals.donors[DONOR]
    assert (donor.pledged, donor.received, donor.shortfall, donor.rejected) == (1000, 950, 50, 30)
    assert (donor.delivered, donor.confirmed, donor.damaged) == (920, 918, 2)
    hospital = totals.recipients[HOSPITAL]
    assert (hospital.pledged, hospital.delivered, hospital.confirmed) == (1000, 920, 918)


def test_flow_runs_from_donor_through_warehouse_and_hub_to_recipient() -> None:
    log = new_log()
    clean_lifecycle(log)
    result = audit_offline(log, AuditOptions(now=log.clock))
    graph = result.flow.graph(result.reference)
    links = {(link["source"], link["target"]): link["quantity"] for link in graph["links"]}
    assert links[("donor:donor-jingdong", "site:wh-wuhan-1")] == 950
    assert links[("site:wh-wuhan-1", "site:hub-xiantao")] == 600
    assert links[("site:hub-xiantao", "recipient:rcp-jinyintan")] == 600
    assert links[("site:wh-wuhan-1", "recipient:rcp-jinyintan")] == 320
    assert links[("site:wh-wuhan-1", "loss:rejected")] == 30


def test_event_on_the_wrong_topic_is_reported_and_still_folded() -> None:
    log = new_log()
    life = clean_lifecycle(log)
    log.records[log.index_of(life.id("inspected"))].topic = log.settings.reference_topic
    result = audit_offline(log, AuditOptions(now=log.clock))
    assert result.failed_checks == ["events-readable"]
    assert (
        "is on unit.reference-events, not on unit.batch-events" in result.check("events-readable").findings[0].message
    )
    root = result.state(life.root)
    assert root is not None and root.status.value == "confirmed"


def test_record_that_is_not_a_cloudevent_is_reported_unreadable() -> None:
    log = new_log()
    clean_lifecycle(log)
    template = log.records[-1]
    log.records.append(
        replace(template, value=b"\x00garbage", headers=[("ce_id", b"x")], timestamp_ms=template.timestamp_ms + 1)
    )
    result = audit_offline(log, AuditOptions(now=log.clock))
    assert result.failed_checks == ["events-readable"] and result.stats.unreadable == 1
    assert "missing CloudEvents header(s)" in result.check("events-readable").findings[0].message
