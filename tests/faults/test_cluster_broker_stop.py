"""Fault 4: a 3-broker KRaft cluster, topics at replication factor 3 with min.insync.replicas=2; under steady load
the broker leading most of the batch topic's partitions is stopped, then started again.

With two replicas left every acks=all write still has its in-sync quorum, so the services keep serving throughout:
every command is acknowledged, and the warehouse keeps applying pledges made while the broker is away. When the
broker is back it catches up and rejoins every ISR; nothing is lost or duplicated.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.devstack.log_reader import project_topics
from shared.devstack.recorder import PROPAGATION_DEADLINE_SECONDS, Budget, poll
from shared.settings import Settings
from tests.faults.common import Harness, assert_clean, report, running, steady_pledges
from tests.faults.servers import PrivateKafka

BEFORE, DURING, AFTER = 30, 45, 30  # acknowledged pledges in each phase
REPLICAS, MIN_ISR = 3, "2"


class Phases:
    """How long each step of the fault took, for the summary (never asserted: timing depends on the machine)."""

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.seconds: dict[str, float] = {}

    def mark(self, name: str) -> None:
        now = time.monotonic()
        self.seconds[name] = round(now - self.last, 1)
        self.last = now


async def describe(settings: Settings) -> tuple[list[dict[str, Any]], list[str | None]]:
    """Each project topic's partitions (leader, replicas, ISR) and its min.insync.replicas."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        topics = project_topics(settings)
        described: list[dict[str, Any]] = await admin.describe_topics(topics)
        configs = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"min.insync.replicas": None}) for topic in topics]
        )
    finally:
        await admin.close()
    return described, [_min_isr(configs, topic) for topic in topics]


def _min_isr(responses: list[Any], topic: str) -> str | None:
    for response in responses:
        for resource in response.to_object()["resources"]:
            if resource["resource_name"] != topic:
                continue
            for entry in resource["config_entries"]:
                if entry["config_names"] == "min.insync.replicas":
                    return str(entry["config_value"])
    return None


def busiest_leader(described: list[dict[str, Any]]) -> int:
    leaders = Counter(p["leader"] for topic in described for p in topic["partitions"])
    return int(leaders.most_common(1)[0][0])


async def full_isr(settings: Settings) -> bool | None:
    described, _ = await describe(settings)
    return True if all(len(p["isr"]) == REPLICAS for t in described for p in t["partitions"]) else None


async def warehouse_knows_latest_pledge(harness: Harness) -> str:
    """A pledge acknowledged now reaches the warehouse: consumption goes on while a broker is away."""
    batch_id = str(harness.recorder.acknowledged[-1].response["batch_ids"][0])
    await harness.recorder.wait_for(
        "warehouse", f"/batches/{batch_id}", lambda _b: True, f"warehouse to see {batch_id}"
    )
    return batch_id


@pytest.mark.kafka_cluster
async def test_cluster_broker_stopped_under_load_keeps_serving_and_loses_nothing(
    private_cluster: PrivateKafka, tmp_path: Path
) -> None:
    replicated = {"AIDTRAIL_TOPIC_REPLICATION": str(REPLICAS)}
    async with running(tmp_path, private_cluster.bootstrap, ("pledge", "warehouse"), extra_env=replicated) as harness:
        recorder = harness.recorder
        described, min_isr = await describe(harness.settings)
        assert {len(p["replicas"]) for t in described for p in t["partitions"]} == {REPLICAS}
        assert min_isr == [MIN_ISR, MIN_ISR]
        async with steady_pledges(harness, Budget(max_commands=3000, seconds=300, per_second=12)) as stream:
            await recorder.wait_acknowledged(BEFORE, "pledges before the fault")
            victim = busiest_leader(described)
            phases = Phases()
            await private_cluster.stop_node(victim)
            phases.mark("stop_node")
            await recorder.wait_acknowledged(len(recorder.acknowledged) + DURING, "pledges with a broker stopped")
            await warehouse_knows_latest_pledge(harness)
            phases.mark("served_while_stopped")
            await private_cluster.start_node(victim)
            phases.mark("start_node")
            await poll(
                lambda: full_isr(harness.settings), "the broker to rejoin every ISR", PROPAGATION_DEADLINE_SECONDS
            )
            phases.mark("isr_full")
            await recorder.wait_acknowledged(len(recorder.acknowledged) + AFTER, "pledges after the broker is back")
        summary = await harness.verify(
            "fault 4: 3-broker cluster, one broker stopped under load",
            stream,
            stopped_broker=victim,
            phase_seconds=phases.seconds,
        )
    report(summary, tmp_path)
    assert not recorder.errors, f"a command failed while a broker was away: {recorder.error_samples}"
    assert_clean(summary)
