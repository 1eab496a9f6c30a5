"""Fault 7: the PostgreSQL server of the pledge and warehouse services is restarted under steady load.

While it is down, commands fail fast with 503 and a Retry-After header (never a 500, never a hang); the relay and
the consumers keep their work and retry. When it is back the services recover by themselves, without a restart,
and nothing acknowledged is lost or duplicated.

The server is this test's own (see tests/faults/servers.py): stopping the shared one on 5432 would fail every
other test running at the time.
"""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path

from shared.devstack.recorder import PROPAGATION_DEADLINE_SECONDS, Budget, Recorder, poll
from tests.faults.common import assert_clean, refusals, report, running, steady_pledges
from tests.faults.servers import PrivateKafka, PrivatePostgres

BEFORE, AFTER = 30, 30  # acknowledged pledges before the restart and after it
REFUSED_WHILE_DOWN = 20  # 503 answers to see while the server is down


async def refused_with_retry_after(recorder: Recorder, count: int) -> None:
    async def enough() -> bool | None:
        return True if recorder.retry_after["pledge"] >= count else None

    await poll(enough, f"{count} answers 503 with Retry-After", PROPAGATION_DEADLINE_SECONDS)


async def test_postgres_restart_under_load_gives_503_then_recovers_losing_nothing(
    private_broker: PrivateKafka, private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    await private_broker.start()
    urls = {
        name: await private_postgres.create_database(f"{name}_{uuid.uuid4().hex[:8]}")
        for name in ("pledge", "warehouse")
    }
    async with running(tmp_path, private_broker.bootstrap, ("pledge", "warehouse"), database_urls=urls) as harness:
        recorder = harness.recorder
        async with steady_pledges(harness, Budget(max_commands=3000, seconds=300, per_second=12)) as stream:
            await recorder.wait_acknowledged(BEFORE, "pledges before the restart")
            try:
                await private_postgres.stop("fast")
                await refused_with_retry_after(recorder, REFUSED_WHILE_DOWN)
                while_down = Counter(recorder.errors)
            finally:
                await private_postgres.start()
            await recorder.wait_acknowledged(len(recorder.acknowledged) + AFTER, "pledges after the restart")
        summary = await harness.verify(
            "fault 7: PostgreSQL restarted under load",
            stream,
            refused_while_down=dict(while_down),
            answered_503_with_retry_after=recorder.retry_after["pledge"],
            slowest_failure_seconds=recorder.slowest_failure,
        )
    report(summary, tmp_path)
    assert set(refusals(recorder.errors)) == {"pledge 503"}, recorder.error_samples
    assert recorder.retry_after["pledge"] == recorder.errors["pledge 503"], "every 503 must carry Retry-After"
    assert_clean(summary)
