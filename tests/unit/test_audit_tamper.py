"""The chain verifier names each kind of tampering, and drops exact duplicates without flagging them.

Logs are crafted the way the services write them and audited offline (no Kafka); the same cases run against
the real broker in tests/integration/test_audit_tamper.py.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from services.audit.craft import CraftedLog, audit_offline
from services.audit.findings import TAMPER_CHECKS
from services.audit.replay import AuditOptions, AuditResult
from services.audit.scenario import DONOR, clean_lifecycle
from shared.events import reference_events as ref
from shared.events.envelope import Envelope
from shared.settings import Settings


@pytest.fixture
def log() -> CraftedLog:
    return CraftedLog(Settings(topic_prefix="unit"))


def tamper_findings(result: AuditResult) -> dict[str, list[str]]:
    return {name: [f.message for f in result.check(name).findings] for name in TAMPER_CHECKS}


def only_failing(result: AuditResult) -> set[str]:
    return {name for name in TAMPER_CHECKS if not result.check(name).passed}


def test_clean_log_has_intact_chains(log: CraftedLog) -> None:
    clean_lifecycle(log)
    result = audit_offline(log)
    assert only_failing(result) == set()
    assert result.ok, result.failed_checks
    assert {s: c.events for s, c in result.chains.items()} == {
        "pledge": 2,
        "warehouse": 9,
        "dispatch": 10,
        "recipient": 3,
    }


def test_gap_is_named_with_the_missing_sequence(log: CraftedLog) -> None:
    clean_lifecycle(log)
    dropped = next(r.envelope for r in log.records if r.envelope.type == ref.SiteRegistered.event_type)
    log.drop(dropped.id)
    result = audit_offline(log)
    assert only_failing(result) == {"chain-gap"}
    [message] = tamper_findings(result)["chain-gap"]
    assert f"dispatch: sequence {dropped.sequence} missing" in message


def test_reordered_event_is_named(log: CraftedLog) -> None:
    clean_lifecycle(log)
    first = log.emit("pledge", DONOR, ref.DonorRegistered(donor_id=DONOR, name="Jingdong", country="CN"))
    second = log.emit("pledge", DONOR, ref.DonorRegistered(donor_id=DONOR, name="JD Logistics", country="CN"))
    log.swap(first.id, second.id)
    result = audit_offline(log)
    assert only_failing(result) == {"chain-reordered"}
    finding = result.check("chain-reordered").findings[0]
    assert finding.event_ids == (first.id, second.id)


def test_changed_payload_names_the_changed_event(log: CraftedLog) -> None:
    life = clean_lifecycle(log)
    log.change_payload(life.id("inspected"), inspector="qc-nobody")
    result = audit_offline(log)
    assert only_failing(result) == {"chain-changed-payload"}
    finding = result.check("chain-changed-payload").findings[0]
    assert finding.event_ids[0] == life.id("inspected")
    assert "was changed after it was written" in finding.message


def test_event_without_chain_headers_from_unknown_source_is_injected(log: CraftedLog) -> None:
    clean_lifecycle(log)
    fake = Envelope(type=ref.DonorRegistered.event_type, source="mallory", subject="donor-x",
                    data={"donor_id": "donor-x", "name": "Ghost donor", "kind": "company", "country": None},
                    actor="admin:mallory", correlation_id="c")  # fmt: skip
    log.inject(fake)
    result = audit_offline(log)
    assert only_failing(result) == {"chain-injected"}
    assert "unknown source 'mallory'" in tamper_findings(result)["chain-injected"][0]


def test_duplicate_sequence_with_other_content_is_injected(log: CraftedLog) -> None:
    life = clean_lifecycle(log)
    genuine = log.records[log.index_of(life.id("received"))].envelope
    forged = replace(genuine, id="0190f000-0000-7000-8000-000000000001", data={**genuine.data, "lot": "FORGED"})
    log.inject(forged)
    result = audit_offline(log)
    assert only_failing(result) == {"chain-injected"}
    finding = result.check("chain-injected").findings[0]
    assert f"sequence {genuine.sequence} is used twice with different content" in finding.message
    assert finding.event_ids == (forged.id, genuine.id)


def test_appended_event_without_a_valid_link_is_injected(log: CraftedLog) -> None:
    clean_lifecycle(log)
    chain = log.chains["recipient"]
    forged = Envelope(type=ref.DonorRegistered.event_type, source="recipient", subject="donor-y",
                      data={"donor_id": "donor-y", "name": "Forged", "kind": "company", "country": None},
                      actor="admin:mallory", correlation_id="c").chained(chain.sequence + 1, "f" * 64)  # fmt: skip
    log.inject(forged)
    result = audit_offline(log)
    assert only_failing(result) == {"chain-injected"}
    assert "has no valid link" in tamper_findings(result)["chain-injected"][0]


def test_exact_duplicate_is_dropped_not_flagged(log: CraftedLog) -> None:
    life = clean_lifecycle(log)
    log.duplicate(life.id("inspected"))
    log.duplicate(life.id("dispatched"))
    result = audit_offline(log)
    assert result.ok, result.failed_checks
    assert result.stats.duplicates == 2
    child = result.state(life.child)
    assert child is not None and child.version == 8  # each event folded once


def test_duplicate_of_an_event_waiting_behind_a_late_one_is_dropped() -> None:
    log = CraftedLog(Settings(topic_prefix="unit"), step=timedelta(seconds=1))
    events = [log.emit("pledge", f"donor-{i}", ref.DonorRegistered(donor_id=f"donor-{i}", name="d")) for i in range(5)]
    late = log.records[log.index_of(events[2].id)]
    late.timestamp_ms += 10_000  # sequence 3 arrives last, on its own partition: 4 and 5 wait for it
    log.duplicate(events[3].id, at=log.clock)
    result = audit_offline(log)
    assert only_failing(result) == set()
    assert result.stats.duplicates == 1
    assert result.chains["pledge"].events == 5


def test_reorder_window_overflow_declares_the_gap_early() -> None:
    log = CraftedLog(Settings(topic_prefix="unit"), step=timedelta(seconds=1))
    events = [log.emit("pledge", f"donor-{i}", ref.DonorRegistered(donor_id=f"donor-{i}", name="d")) for i in range(30)]
    log.drop(events[3].id)
    result = audit_offline(log, AuditOptions(reorder_window=5))
    assert only_failing(result) == {"chain-gap"}
    assert result.chains["pledge"].events == 29


def test_anchored_head_detects_a_truncated_tail(log: CraftedLog) -> None:
    life = clean_lifecycle(log)
    head = log.chains["recipient"]
    anchors = {"recipient": (head.sequence, head.prev_hash)}
    assert audit_offline(log, AuditOptions(anchors=anchors)).ok
    log.drop(life.id("confirmed-rest"))
    result = audit_offline(log, AuditOptions(anchors=anchors))
    assert only_failing(result) == {"chain-truncated"}
    assert "1 event(s) were removed from the tail" in result.check("chain-truncated").findings[0].message
