"""End to end: the Hubei 2020 scenario through the HTTP APIs of all four services, as real processes, over the
real broker. At the end every batch's state, rebuilt from events by every service, is what the scenario expects,
and every conservation rule holds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from shared.devstack.processes import SERVICE_NAMES, Stack, StackConfig
from shared.scenario import hubei2020_data as data
from shared.scenario.client import ScenarioClient
from shared.scenario.hubei2020 import Hubei2020, ScenarioResult
from shared.scenario.verify import verify
from shared.settings import Settings
from tests.fixtures.databases import fresh_postgres_url


@pytest.fixture(params=["sqlite", "postgres"])
async def database_urls(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    if request.param == "sqlite":
        yield {}
        return
    async with AsyncExitStack() as stack:
        yield {name: await stack.enter_async_context(fresh_postgres_url()) for name in SERVICE_NAMES}


@pytest.fixture
async def scenario_run(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, database_urls: dict[str, str]
) -> AsyncIterator[tuple[ScenarioClient, ScenarioResult]]:
    config = StackConfig(
        run_dir=tmp_path, topic_prefix=topic_prefix, kafka_bootstrap=kafka_bootstrap, database_urls=database_urls
    )
    stack = Stack(config)
    client = ScenarioClient({name: stack.url(name) for name in SERVICE_NAMES}, Settings(topic_prefix=topic_prefix))
    try:
        await stack.start()
        result = await Hubei2020(client).run()
        yield client, result
    finally:
        await client.close()
        stack.stop()


async def test_every_batch_ends_where_the_scenario_expects_on_every_service(
    scenario_run: tuple[ScenarioClient, ScenarioResult],
) -> None:
    client, result = scenario_run
    checks = await verify(client, result)
    off = {c.batch_id: (c.expected, c.seen, c.violations) for c in checks if not c.ok}
    assert not off, off
    statuses = result.expected_status
    assert statuses[data.REJECTED_LOT] == "rejected"
    assert statuses["8h-xiaoji-2020-01-1"] == "in_stock", "the mattress remainder stays in stock under the parent"
    children = [b for b in result.batch_ids if b.startswith("oppo-2020-03-1.")]
    assert len(children) == 3, "the Oppo masks are split three ways to hospitals abroad"
    short = next(c for c in checks if c.batch_id == data.SHORT_DELIVERY[0])
    assert short.state["confirmed_received"] == data.SHORT_DELIVERY[1]
    assert short.state["confirmed_damaged"] == data.SHORT_DELIVERY[2]
    redesignated = next(c for c in checks if c.batch_id == data.REDESIGNATED[0])
    assert redesignated.state["delivered_to_recipient_id"] == data.REDESIGNATED[2]
    assert redesignated.state["redesignations"][0][2] == "wuhan-charity-federation:chen"
