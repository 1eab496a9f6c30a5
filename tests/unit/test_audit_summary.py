"""A summary replay (families checked, totalled and dropped as they close) must judge every log exactly as a
full replay does: the same checks, error and warning counts, findings and totals; only the order of findings
and the batches kept in the result differ."""

from __future__ import annotations

import gc

import pytest

from services.audit.craft import CraftedLog, audit_offline
from services.audit.drills import DRILLS, run_drill
from services.audit.replay import FULL_COLLECTION_EVERY, AuditOptions, AuditResult, _heap_frozen
from services.audit.scenario import clean_lifecycle
from services.audit.sla import SlaPolicy
from shared.events import batch_events as ev
from shared.settings import Settings


def new_log() -> CraftedLog:
    return CraftedLog(Settings(topic_prefix="unit"))


def verdict(result: AuditResult) -> dict[str, tuple[int, int, list[tuple[str, str | None, tuple[str, ...]]]]]:
    return {
        check.name: (
            check.errors,
            check.warnings,
            sorted((f.message, f.batch_id, f.event_ids) for f in check.findings),
        )
        for check in result.checks
    }


def both(log: CraftedLog, **options: object) -> tuple[AuditResult, AuditResult]:
    full = audit_offline(log, AuditOptions(**options))  # type: ignore[arg-type]
    summary = audit_offline(log, AuditOptions(summary_only=True, **options))  # type: ignore[arg-type]
    return full, summary


def assert_same(full: AuditResult, summary: AuditResult) -> None:
    assert verdict(summary) == verdict(full)
    assert summary.totals == full.totals
    assert summary.totals.to_json() == full.totals.to_json()
    assert summary.failed_checks == full.failed_checks
    assert summary.stats.closed_batches + len(summary.tracks) == len(full.tracks)


def test_clean_lifecycles_close_as_they_end_and_keep_nothing() -> None:
    log = new_log()
    for n in range(3):
        clean_lifecycle(log, root=f"b-{n}", with_parties=n == 0)
    full, summary = both(log, now=log.clock)
    assert_same(full, summary)
    assert summary.stats.closed_batches == len(full.tracks) == 6
    assert summary.tracks == {} and summary.ok


@pytest.mark.parametrize("check", sorted(DRILLS))
def test_each_drill_gets_the_same_verdict(check: str) -> None:
    log = new_log()
    drill = run_drill(check, log)
    assert_same(*both(log, now=drill.now))


def test_an_event_for_a_closed_batch_is_refused_as_in_a_full_replay() -> None:
    log = new_log()
    life = clean_lifecycle(log)
    log.emit("recipient", life.root, ev.ReceiptConfirmed.model_validate(life.events["confirmed"].data))
    log.emit("warehouse", life.child, ev.BatchPledged.model_validate(life.events["pledged"].data))
    full, summary = both(log, now=log.clock)
    assert_same(full, summary)
    assert full.check("fold-accepts-all").errors == 2


def test_the_stuck_rule_and_a_mid_log_window_judge_the_same() -> None:
    log = new_log()
    life = clean_lifecycle(log)
    clean_lifecycle(log, root="b-late", with_parties=False)
    full, summary = both(log, now=log.clock, sla=SlaPolicy({"confirmed": 0.01}))
    assert_same(full, summary)
    assert full.check("no-stuck-batches").errors == 4
    assert_same(*both(log, now=log.clock, since=life.moments["confirmed"]))


def test_overlapping_replays_leave_the_collector_as_they_found_it() -> None:
    before = gc.get_threshold()
    first, second = _heap_frozen(), _heap_frozen()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert gc.get_threshold()[2] == max(before[2], FULL_COLLECTION_EVERY)  # the second replay is still running
    assert gc.get_freeze_count() > 0
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
