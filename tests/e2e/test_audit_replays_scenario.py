"""The auditor, replaying the log of the Hubei 2020 scenario, reproduces what every service showed: at the end,
and as of three moments during the run (after pledging, after intake and inspection, after allocation)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.audit.replay import AuditOptions, replay
from shared.devstack.processes import SERVICE_NAMES, Stack, StackConfig
from shared.scenario.client import ScenarioClient, wait_until
from shared.scenario.hubei2020 import ADMIN, Hubei2020
from shared.scenario.verify import verify
from shared.settings import Settings

Snapshot = tuple[datetime, dict[str, dict[str, Any]]]


def normalised(state: dict[str, Any] | None) -> Any:
    """Both sides as JSON would carry them: tuples become lists, dates become strings."""
    return orjson.loads(orjson.dumps(state, default=str))


@pytest.fixture
async def stack(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> AsyncIterator[Stack]:
    running = Stack(StackConfig(run_dir=tmp_path, topic_prefix=topic_prefix, kafka_bootstrap=kafka_bootstrap))
    try:
        await running.start()
        yield running
    finally:
        running.stop()


async def outboxes_empty(client: ScenarioClient) -> None:
    """Everything committed so far is on the log, so a replay up to now sees it."""

    async def all_published() -> bool | None:
        for service in SERVICE_NAMES:
            text = (await client.http.get(f"{client.urls[service]}/metrics")).text
            if "aidtrail_outbox_backlog 0.0" not in text:
                return None
        return True

    await wait_until(all_published, what="every outbox to be published")


async def snapshot(client: ScenarioClient, batch_ids: list[str]) -> Snapshot:
    await outboxes_empty(client)
    states = {b: (await client.call("warehouse", "GET", f"/batches/{b}", ADMIN))["state"] for b in batch_ids}
    return datetime.now(UTC), states


async def test_replay_reproduces_every_service_view_at_the_end_and_as_of_three_moments(
    stack: Stack, topic_prefix: str, kafka_bootstrap: str
) -> None:
    settings = Settings(topic_prefix=topic_prefix, kafka_bootstrap=kafka_bootstrap)
    client = ScenarioClient({name: stack.url(name) for name in SERVICE_NAMES}, settings)
    scenario = Hubei2020(client)
    moments: list[Snapshot] = []
    try:
        await scenario.register_world()
        await scenario.pledge()
        moments.append(await snapshot(client, scenario.result.batch_ids))
        await scenario.receive_and_inspect()
        moments.append(await snapshot(client, scenario.result.batch_ids))
        await scenario.allocate_and_pick()
        moments.append(await snapshot(client, scenario.result.batch_ids))
        await scenario.ship_and_deliver()
        await scenario.confirm_receipts()
        checks = await verify(client, scenario.result)
        await outboxes_empty(client)
        final = await replay(settings, options=AuditOptions(progress=False))
        assert final.ok, [c.spec.name for c in final.checks if c.status == "fail"]
        assert all(check.ok for check in checks)
        for check in checks:
            replayed = normalised(final.state_json(check.batch_id))
            for service in SERVICE_NAMES:
                shown = (await client.call(service, "GET", f"/batches/{check.batch_id}", ADMIN))["state"]
                assert replayed == normalised(shown), (service, check.batch_id)
        for moment, shown in moments:
            as_of = await replay(settings, options=AuditOptions(as_of=moment, progress=False))
            for batch_id, state in shown.items():
                assert normalised(as_of.state_json(batch_id)) == normalised(state), (moment, batch_id)
        statuses = [{s["status"] for s in shown.values()} for _, shown in moments]
        assert statuses[0] == {"pledged"} and "picked" in statuses[2], "the three moments differ"
    finally:
        await client.close()
