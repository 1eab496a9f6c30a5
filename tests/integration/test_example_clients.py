"""The example clients run as CI would run them: separate processes against the real broker, with a timeout.

They are documentation that executes; these tests keep them honest: the right events, each once, in the
right place, and an exit that a script can rely on.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from examples import kafka_follower
from shared.events.envelope import Envelope, new_event_id
from shared.events.registry import upcast
from shared.settings import REPO_ROOT, Settings
from shared.web.auth import Role
from tests.integration.sse_scenario import Published, expected_ids, scenario
from tests.integration.sse_support import publish, serving, stream_settings

EXAMPLES = REPO_ROOT / "examples"
GOLDEN_RECEIVED_V1 = REPO_ROOT / "tests" / "data" / "golden" / "org.aidtrail.batch.received.v1.json"
PROCESS_DEADLINE = 90.0
FEBRUARY = int(datetime(2020, 2, 1, tzinfo=UTC).timestamp() * 1000)
MARCH = int(datetime(2020, 3, 1, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
async def settings(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Settings:
    return await stream_settings(kafka_bootstrap, topic_prefix, tmp_path)


@dataclass(frozen=True)
class Run:
    status: int
    lines: list[str]
    summary: str

    def column(self, index: int) -> list[str]:
        return [line.split()[index] for line in self.lines]


async def run_example(script: str, *args: str) -> Run:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / script),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=PROCESS_DEADLINE)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Run(process.returncode, out.decode().splitlines(), err.decode())


def kafka_args(settings: Settings, *extra: str) -> list[str]:
    return ["--bootstrap", settings.kafka_bootstrap, "--topic-prefix", settings.topic_prefix, *extra]


def of_types(events: list[Published], *prefixes: str) -> list[Published]:
    return [p for p in events if p.envelope.type.startswith(prefixes)]


async def test_kafka_follower_prints_chosen_types_once_and_upcasts(settings: Settings) -> None:
    events = scenario()
    wanted = of_types(events, "org.aidtrail.batch.delivered.", "org.aidtrail.shipment.")
    golden = json.loads(GOLDEN_RECEIVED_V1.read_text())
    old_receipt = Published(older_version(events[-2], golden["type"], golden["data"]), True, frozenset())
    await publish(settings, [*events, wanted[0], old_receipt])  # wanted[0] twice: at-least-once delivery
    types = ["--type", "org.aidtrail.batch.delivered.", "--type", "org.aidtrail.shipment.", "--type",
             "org.aidtrail.batch.received.v1"]  # fmt: skip
    # One more than there are, so it reads the whole log (the duplicate may sit on the last partition it reads)
    # and then stops on its timeout.
    limits = ["--max-events", str(len(wanted) + 2), "--timeout", "8"]
    run = await run_example("kafka_follower.py", *kafka_args(settings, "--from", "earliest", *types, *limits))
    assert run.status == 2, run.summary
    assert sorted(run.column(2)) == sorted([p.envelope.id for p in wanted] + [old_receipt.envelope.id])
    assert "org.aidtrail.batch.received.v1->org.aidtrail.batch.received.v2" in run.column(0)
    assert "1 duplicates dropped" in run.summary


def older_version(published: Published, event_type: str, data: dict[str, object]) -> Envelope:
    """An event of an old version, as it sits on the log: the same envelope with the older type and payload."""
    return replace(published.envelope, type=event_type, data=data, id=new_event_id())


async def test_kafka_follower_group_resumes_from_its_commits_and_starts_at_a_time(settings: Settings) -> None:
    events = scenario()
    await publish(settings, events[:12], timestamp_ms=FEBRUARY)
    await publish(settings, events[12:], timestamp_ms=MARCH)
    group = ["--group", f"{settings.topic_prefix}-reliefmap.follow"]
    first = await run_example("kafka_follower.py", *kafka_args(settings, *group, "--from", "2020-02-15T00:00:00Z",
                                                               "--max-events", str(len(events) - 12)))  # fmt: skip
    assert first.status == 0, first.summary
    assert sorted(first.column(2)) == sorted(p.envelope.id for p in events[12:]), "only what happened after"
    more = scenario()[:3]
    await publish(settings, more)
    second = await run_example("kafka_follower.py", *kafka_args(settings, *group, "--max-events", "3"))
    assert second.status == 0, second.summary
    assert sorted(second.column(2)) == sorted(p.envelope.id for p in more), "the group resumes after its commits"


async def test_kafka_follower_gives_up_after_its_timeout(settings: Settings) -> None:
    run = await run_example("kafka_follower.py", *kafka_args(settings, "--max-events", "1", "--timeout", "2"))
    assert run.status == 2 and run.lines == []
    assert "received 0 events" in run.summary


def test_the_example_upcaster_agrees_with_the_services() -> None:
    sample = json.loads(GOLDEN_RECEIVED_V1.read_text())
    assert kafka_follower.upcast(sample["type"], sample["data"]) == upcast(sample["type"], sample["data"])


async def test_sse_follower_prints_exactly_the_filtered_events(settings: Settings) -> None:
    events = scenario()
    await publish(settings, events)
    ship_1 = expected_ids(events, "ship-1")
    async with serving(settings) as server:
        token = server.token(Role.dispatcher)
        args = ["--url", server.url, "--token", token, "--shipment-id", "ship-1", "--from", "earliest"]
        run = await run_example("sse_follower.py", *args, "--max-events", str(len(ship_1)), "--timeout", "60")
        refused = await run_example("sse_follower.py", "--url", server.url, "--token", "forged", "--timeout", "20")
    assert run.status == 0, run.summary
    assert sorted(run.column(2)) == sorted(ship_1)
    assert f"received {len(ship_1)} events" in run.summary
    assert refused.status == 1 and "401" in refused.summary


def test_examples_need_nothing_from_aidtrail() -> None:
    """Apps copy these files: they may import the standard library, httpx and aiokafka, never our code."""
    for path in (EXAMPLES / "kafka_follower.py", EXAMPLES / "sse_follower.py"):
        imports = [line for line in Path(path).read_text().splitlines() if line.startswith(("import ", "from "))]
        assert not [line for line in imports if "shared" in line or "services" in line], path.name
