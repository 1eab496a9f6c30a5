"""Fault 2: the pledge service is killed with SIGKILL between committing events and publishing them.

Twice, under steady load:
* with the broker dead, so the killed process holds a backlog of committed, never published outbox rows (the
  broker comes back first, then the service restarts and its relay publishes the backlog);
* with the broker up, at a moment when the outbox holds rows not yet marked sent: some may already be on the log,
  and the restarted relay publishes them again. Consumers drop such copies by event id.

Either way each acknowledged pledge is on the log under one event id, and the warehouse holds each batch once.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from shared.devstack.faults import unsent_outbox
from shared.devstack.recorder import Budget, LoadError
from shared.store.database import Database
from tests.faults.common import Harness, assert_clean, refusals, report, running, steady_pledges
from tests.faults.servers import PrivateKafka

WARM_UP, BETWEEN = 30, 30  # acknowledged pledges before the first kill, and between the phases
UNSENT_DEADLINE_SECONDS = 60.0


async def kill_with_unsent_rows(harness: Harness) -> int:
    """SIGKILL the pledge service the moment its outbox holds committed rows not marked sent; returns how many.

    Polled as fast as the database answers: with the broker up the relay wakes on every commit, so rows stay
    unsent only for the milliseconds of a send."""
    database = Database.connect(harness.stack.config.database_url("pledge"))
    until = time.monotonic() + UNSENT_DEADLINE_SECONDS
    try:
        while (unsent := await unsent_outbox(database)) == 0:
            if time.monotonic() > until:
                raise LoadError("the pledge outbox never held unsent rows under load")
            await asyncio.sleep(0)
        harness.stack.kill("pledge")
    finally:
        await database.dispose()
    return unsent


async def test_pledge_service_kill_9_between_commit_and_publish_publishes_each_event_once(
    private_broker: PrivateKafka, tmp_path: Path
) -> None:
    await private_broker.start()
    async with running(tmp_path, private_broker.bootstrap, ("pledge", "warehouse")) as harness:
        recorder = harness.recorder
        async with steady_pledges(harness, Budget(max_commands=3000, seconds=300, per_second=12)) as stream:
            await recorder.wait_acknowledged(WARM_UP, "pledges before the faults")
            await private_broker.kill()
            await recorder.wait_acknowledged(len(recorder.acknowledged) + BETWEEN, "pledges into the outbox")
            stranded = await kill_with_unsent_rows(harness)
            await private_broker.start()
            await harness.stack.restart("pledge")
            await recorder.wait_acknowledged(len(recorder.acknowledged) + BETWEEN, "pledges after the restart")
            in_flight = await kill_with_unsent_rows(harness)
            await harness.stack.restart("pledge")
            await recorder.wait_acknowledged(len(recorder.acknowledged) + BETWEEN, "pledges after the second restart")
        summary = await harness.verify(
            "fault 2: service kill -9 between commit and publish",
            stream,
            unsent_rows_at_kill_broker_dead=stranded,
            unsent_rows_at_kill_broker_up=in_flight,
        )
    report(summary, tmp_path)
    assert stranded > 0 and in_flight > 0
    assert not refusals(recorder.errors), f"only connection failures are expected: {recorder.error_samples}"
    assert_clean(summary)
