"""Fault 1: the broker is killed with SIGKILL under steady load, and started again.

Commands only need the service's own database, so pledges keep succeeding into the outbox while the broker is away;
the relay retries until it is back, the warehouse's consumer resumes from its stored positions, and in the end
every acknowledged pledge is on the log once and in the warehouse once.
"""

from __future__ import annotations

from pathlib import Path

from shared.devstack.recorder import Budget
from tests.faults.common import assert_clean, report, running, steady_pledges
from tests.faults.servers import PrivateKafka

BEFORE, DURING, AFTER = 30, 45, 30  # acknowledged pledges in each phase


async def test_broker_kill_9_under_steady_load_loses_and_duplicates_nothing(
    private_broker: PrivateKafka, tmp_path: Path
) -> None:
    await private_broker.start()
    async with running(tmp_path, private_broker.bootstrap, ("pledge", "warehouse")) as harness:
        recorder = harness.recorder
        async with steady_pledges(harness, Budget(max_commands=3000, seconds=300, per_second=12)) as stream:
            await recorder.wait_acknowledged(BEFORE, "pledges before the fault")
            await private_broker.kill()
            killed_at = len(recorder.acknowledged)
            await recorder.wait_acknowledged(killed_at + DURING, "pledges while the broker is dead")
            backlog = await harness.outbox_backlog("pledge")
            await private_broker.start()
            restarted_at = len(recorder.acknowledged)
            await recorder.wait_acknowledged(restarted_at + AFTER, "pledges after the broker is back")
        summary = await harness.verify(
            "fault 1: broker kill -9 under load",
            stream,
            acknowledged_while_broker_down=restarted_at - killed_at,
            outbox_backlog_while_broker_down=backlog,
        )
    report(summary, tmp_path)
    assert backlog > 0, "the pledges acknowledged while the broker was dead should have waited in the outbox"
    assert not recorder.errors, f"commands need only the database, yet some failed: {recorder.error_samples}"
    assert_clean(summary)
