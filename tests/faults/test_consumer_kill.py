"""Fault 3: the warehouse is killed with SIGKILL while it applies a burst, after updating its projection and before
any Kafka commit.

Its positions live in its own database, committed with the projection, and it never commits offsets to Kafka; so a
restart seeks to the stored positions: what was committed is not applied again, what was rolled back by the kill is
applied once. Small consumer batches (20 records) put many commits into the burst, so each kill lands between some
of them and in the middle of another.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from aiokafka.admin import AIOKafkaAdminClient

from shared.devstack.recorder import Budget, poll
from shared.devstack.workloads import PledgeStream
from shared.settings import Settings
from shared.store.database import Database
from shared.store.schema import processed_events
from tests.faults.common import Harness, assert_clean, report, running
from tests.faults.servers import PrivateKafka

BURST = 400  # pledges of two lines: 800 batch events and 400 reference events for the warehouse
KILL_AT = (0.2, 0.55)  # share of the burst's events applied when each SIGKILL is sent
APPLY_DEADLINE_SECONDS = 240.0


async def applied(database: Database, consumer: str) -> int:
    async with database.read() as conn:
        query = sa.select(sa.func.count()).select_from(processed_events).where(processed_events.c.consumer == consumer)
        return int((await conn.execute(query)).scalar() or 0)


async def kill_when_applied(harness: Harness, consumer: str, count: int) -> int:
    """SIGKILL the warehouse as soon as its consumer has committed `count` events; returns how many it had."""
    database = Database.connect(harness.stack.config.database_url("warehouse"))
    try:

        async def reached() -> int | None:
            done = await applied(database, consumer)
            return done if done >= count else None

        done: int = await poll(reached, f"{consumer} to apply {count} events", APPLY_DEADLINE_SECONDS)
        harness.stack.kill("warehouse")
        return done
    finally:
        await database.dispose()


async def kafka_committed_offsets(settings: Settings, group: str) -> int:
    """Offsets the consumer group committed to Kafka: none, since positions are kept in the database only."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        return len(await admin.list_consumer_group_offsets(group))
    finally:
        await admin.close()


async def test_warehouse_kill_9_mid_burst_applies_every_event_exactly_once(
    private_broker: PrivateKafka, tmp_path: Path
) -> None:
    await private_broker.start()
    small_batches = {"AIDTRAIL_CONSUMER_BATCH_SIZE": "20"}
    async with running(
        tmp_path, private_broker.bootstrap, ("pledge", "warehouse"), start=("pledge",), extra_env=small_batches
    ) as harness:
        stream = PledgeStream(harness.recorder)
        await stream.setup()
        await stream.run(Budget(max_commands=BURST, seconds=240), workers=6)
        consumer = f"{harness.settings.topic_prefix}.warehouse.batches"
        total = 2 * len(stream.attempted)
        kills = []
        await harness.stack.start("warehouse")
        for share in KILL_AT:
            kills.append(await kill_when_applied(harness, consumer, int(total * share)))
            await harness.stack.restart("warehouse")
        summary = await harness.verify(
            "fault 3: consumer kill -9 mid-burst",
            stream,
            burst_batch_events=total,
            applied_at_each_kill=kills,
            kafka_committed_offsets=await kafka_committed_offsets(harness.settings, consumer),
        )
    report(summary, tmp_path)
    assert all(done < total for done in kills), f"a kill came after the burst was applied: {kills} of {total}"
    assert summary.notes["kafka_committed_offsets"] == 0
    assert not harness.recorder.errors, harness.recorder.error_samples
    assert_clean(summary)
