"""Per-batch views from transitions: timeline entries, chain of custody from donor to recipient, lineage tree."""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise

from services.audit.batch_detail import custody_path
from services.audit.craft import CraftedLog, audit_offline
from services.audit.custody import custody
from services.audit.lineage import ancestry, lineage
from services.audit.replay import AuditOptions
from services.audit.scenario import DONOR, HOSPITAL, HUB, WAREHOUSE, Lifecycle, clean_lifecycle
from services.audit.timeline import entry
from services.audit.tracker import Transition
from shared.settings import Settings


def replayed() -> tuple[Lifecycle, dict[str, list[Transition]], CraftedLog]:
    log = CraftedLog(Settings(topic_prefix="unit"))
    life = clean_lifecycle(log)
    found: dict[str, list[Transition]] = defaultdict(list)
    audit_offline(log, AuditOptions(now=log.clock), hook=lambda t: found[t.batch_id].append(t))
    return life, found, log


def test_timeline_lists_type_time_actor_site_source_and_sequence() -> None:
    life, found, _ = replayed()
    timeline = [entry(t) for t in found[life.child]]
    assert [item.type for item in timeline] == [
        "split-created",
        "picked",
        "dispatched",
        "arrived",
        "handed-over",
        "departed",
        "delivered",
        "receipt-confirmed",
    ]
    arrived = timeline[3]
    assert (arrived.site, arrived.source, arrived.status_after) == (HUB, "dispatch", "at_hub")
    assert arrived.actor == "operator:dispatch-clerk" and arrived.sequence is not None
    assert arrived.event_id == life.id("arrived") and arrived.time.endswith("Z")


def test_custody_runs_from_the_donor_to_the_recipient_who_signed() -> None:
    life, found, log = replayed()
    audit = audit_offline(log, AuditOptions(now=log.clock))
    path = ancestry(audit.tracks, life.child)
    assert path == [life.root, life.child]
    segments = custody(custody_path(path, found))
    holders = [(s.holder_kind, s.holder, s.site) for s in segments]
    assert holders == [
        ("donor", DONOR, None),
        ("warehouse", WAREHOUSE, WAREHOUSE),
        ("carrier", "SF Express", f"{WAREHOUSE} -> {HUB}"),
        ("hub", HUB, HUB),
        ("carrier", "Hubei Red Cross van", HUB),
        ("carrier", "Hubei Red Cross van", f"{HUB} -> site-jinyintan"),
        ("recipient", HOSPITAL, "site-jinyintan"),
    ]
    assert all(a.end == b.start for a, b in pairwise(segments))
    assert segments[-1].end is None and segments[-1].note == "receipt signed by head nurse Wang"
    assert segments[0].start_event_id == life.id("pledged")


def test_lineage_runs_up_to_the_root_and_down_to_every_receipt() -> None:
    life, _, log = replayed()
    audit = audit_offline(log, AuditOptions(now=log.clock))
    tree = lineage(audit.tracks, life.child)
    assert tree is not None and tree.batch_id == life.root
    assert [node.batch_id for node in tree.walk()] == [life.root, life.child]
    child = tree.children[0]
    assert child.selected and (child.quantity, child.delivered_to, child.confirmed) == (600, HOSPITAL, 600)
    assert (tree.confirmed, tree.damaged) == (318, 2)
