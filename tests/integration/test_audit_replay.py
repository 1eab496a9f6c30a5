"""Replays against the real broker: a clean log passes every check, each drill breaks its check, "as of T"
gives the state at T, and one batch's timeline, custody and lineage are fetched on demand."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.audit.batch_detail import batch_detail
from services.audit.craft import CraftedLog
from services.audit.drills import DRILLS, run_drill
from services.audit.replay import AuditOptions, replay
from services.audit.scenario import HOSPITAL, clean_lifecycle
from shared.domain.batch_fold import fold
from shared.domain.batch_state import BatchState, BatchStatus
from shared.events.batch_events import Payload
from shared.events.registry import parse_envelope
from shared.settings import Settings

pytestmark = pytest.mark.kafka


def new_log(kafka_bootstrap: str, topic_prefix: str, step: timedelta = timedelta(minutes=1)) -> CraftedLog:
    return CraftedLog(Settings(topic_prefix=topic_prefix, kafka_bootstrap=kafka_bootstrap), step=step)


async def test_clean_log_passes_every_check(kafka_bootstrap: str, topic_prefix: str) -> None:
    log = new_log(kafka_bootstrap, topic_prefix)
    life = clean_lifecycle(log)
    await log.publish()
    result = await replay(log.settings, options=AuditOptions(now=log.clock))
    assert result.ok, [f.message for c in result.checks for f in c.findings]
    assert result.stats.records == len(log.records) and result.stats.events_per_second > 0
    child = result.state(life.child)
    assert child is not None and child.status is BatchStatus.CONFIRMED and child.confirmed_received == 600
    assert result.state_json(life.root)["status"] == "confirmed"  # type: ignore[index]


@pytest.mark.parametrize("check", sorted(DRILLS))
async def test_each_reconciliation_check_is_triggered_by_its_drill(
    kafka_bootstrap: str, topic_prefix: str, check: str
) -> None:
    log = new_log(kafka_bootstrap, topic_prefix)
    drill = run_drill(check, log)
    await log.publish()
    result = await replay(log.settings, options=AuditOptions(now=drill.now))
    assert set(result.failed_checks) == drill.failing
    named = {event_id for finding in result.check(check).findings for event_id in finding.event_ids}
    assert set(drill.event_ids) <= named, result.check(check).findings


def folded_until(log: CraftedLog, until_ms: int) -> dict[str, BatchState]:
    """What the state was at that moment: the shared fold over each batch's events stamped up to then."""
    streams: dict[str, list[Payload]] = {}
    for record in log.records:
        if record.topic == log.settings.batch_topic and record.timestamp_ms <= until_ms:
            streams.setdefault(record.key, []).append(parse_envelope(record.envelope))
    return {batch: state for batch, events in streams.items() if (state := fold(events, batch)) is not None}


async def test_as_of_three_moments_gives_the_state_at_each(kafka_bootstrap: str, topic_prefix: str) -> None:
    log = new_log(kafka_bootstrap, topic_prefix, step=timedelta(hours=1))
    life = clean_lifecycle(log)
    await log.publish()
    moments = {
        "inspected": (life.moments["inspected"], {life.root: BatchStatus.IN_STOCK}),
        "at hub": (life.moments["arrived"] + timedelta(minutes=30), {life.child: BatchStatus.AT_HUB}),
        "end": (life.moments["confirmed-rest"], {life.child: BatchStatus.CONFIRMED, life.root: BatchStatus.CONFIRMED}),
    }
    for name, (moment, expected) in moments.items():
        result = await replay(log.settings, as_of=moment)
        states = result.states
        assert states == folded_until(log, int(moment.timestamp() * 1000)), name
        assert {batch: states[batch].status for batch in expected} == expected, name
    early = (await replay(log.settings, as_of=life.moments["inspected"])).states
    assert life.child not in early and early[life.root].inspected


async def test_batch_detail_gives_timeline_custody_and_lineage(kafka_bootstrap: str, topic_prefix: str) -> None:
    log = new_log(kafka_bootstrap, topic_prefix)
    life = clean_lifecycle(log)
    log.duplicate(life.id("arrived"))
    await log.publish()
    detail = await batch_detail(log.settings, life.child, AuditOptions(now=log.clock))
    assert detail is not None
    assert [item.event_id for item in detail.timeline] == [
        life.id(name)
        for name in (
            "split-created",
            "picked",
            "dispatched",
            "arrived",
            "handed-over",
            "departed",
            "delivered",
            "confirmed",
        )
    ]
    assert [s.holder_kind for s in detail.custody] == [
        "donor",
        "warehouse",
        "carrier",
        "hub",
        "carrier",
        "carrier",
        "recipient",
    ]
    assert detail.custody[-1].holder == HOSPITAL
    assert detail.lineage is not None and detail.lineage.batch_id == life.root
    assert detail.state["status"] == "confirmed" and detail.findings == []
    assert await batch_detail(log.settings, "b-unknown") is None


async def test_since_starts_mid_log_at_a_point_in_time(kafka_bootstrap: str, topic_prefix: str) -> None:
    log = new_log(kafka_bootstrap, topic_prefix)
    first = clean_lifecycle(log, root="b-early")
    log.clock += timedelta(days=1)
    second = clean_lifecycle(log, root="b-late", with_parties=False)
    await log.publish()
    result = await replay(log.settings, options=AuditOptions(since=second.moments["pledged"], now=log.clock))
    assert set(result.states) == {second.root, second.child}
    assert first.root not in result.tracks and result.stats.skipped_partial == 0
    assert not any(result.check(name).findings for name in ("chain-gap", "chain-injected", "chain-changed-payload"))
    assert result.ok, result.failed_checks


async def test_since_in_the_middle_of_a_lifecycle_skips_what_began_before(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    log = new_log(kafka_bootstrap, topic_prefix)
    life = clean_lifecycle(log)
    await log.publish()
    result = await replay(log.settings, options=AuditOptions(since=life.moments["split"], now=log.clock))
    assert set(result.states) == {life.child}  # born in the window; its parent began before it
    assert result.stats.skipped_partial == len(
        ["split", "allocated-rest", "picked-rest", "dispatched-rest", "delivered-rest", "confirmed-rest"]
    )
    assert result.ok, result.failed_checks
