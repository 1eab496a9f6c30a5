"""What every fault test does around its fault: run services as real processes, drive a steady load, and record
the figures the closing note quotes (printed, and as JSON in the test's tmp dir)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from shared.devstack.faults import FaultSummary, unsent_outbox, verify_no_loss
from shared.devstack.processes import Stack, StackConfig
from shared.devstack.recorder import Budget, Recorder, http_client
from shared.devstack.workloads import PledgeStream
from shared.scenario.client import ScenarioClient
from shared.settings import Settings
from shared.store.database import Database


@dataclass
class Harness:
    """A running stack with its load recorder; `began` is when the test started its services, for the run time."""

    stack: Stack
    settings: Settings
    recorder: Recorder
    began: float = field(default_factory=time.monotonic)

    async def outbox_backlog(self, service: str) -> int:
        """Committed events not yet marked published: proof that a command got in while its relay could not publish."""
        database = Database.connect(self.stack.config.database_url(service))
        try:
            return await unsent_outbox(database)
        finally:
            await database.dispose()

    async def verify(self, name: str, stream: PledgeStream | None = None, **notes: object) -> FaultSummary:
        """Settle and check everything (with `stream`, also that every pledge on the log was sent by it)."""
        summary = FaultSummary(name, acknowledged=len(self.recorder.acknowledged), errors=dict(self.recorder.errors))
        summary.notes.update(notes)
        sent = stream.sent if stream is not None else None
        await verify_no_loss(self.stack, self.settings, self.recorder.expected, summary, sent)
        summary.seconds = time.monotonic() - self.began
        return summary


@asynccontextmanager
async def running(
    tmp_path: Path,
    bootstrap: str,
    services: tuple[str, ...],
    *,
    start: tuple[str, ...] | None = None,
    database_urls: dict[str, str] | None = None,
    extra_env: dict[str, str] | None = None,
) -> AsyncIterator[Harness]:
    """The chosen services as real processes on their own topic prefix; `start` picks those started at once."""
    prefix = f"f{uuid.uuid4().hex[:10]}"
    config = StackConfig(
        run_dir=tmp_path / "stack",
        topic_prefix=prefix,
        kafka_bootstrap=bootstrap,
        database_urls=database_urls or {},
        extra_env=extra_env or {},
    )
    began = time.monotonic()
    stack = Stack(config, services)
    settings = Settings(topic_prefix=prefix, kafka_bootstrap=bootstrap)
    client = ScenarioClient({name: stack.url(name) for name in services}, settings, http_client())
    try:
        await stack.start(*(start if start is not None else services))
        yield Harness(stack, settings, Recorder(client), began)
    finally:
        await client.close()
        stack.stop()


@asynccontextmanager
async def steady_pledges(harness: Harness, budget: Budget, workers: int = 4) -> AsyncIterator[PledgeStream]:
    """Pledges flowing for the duration of the block; the budget closes and the workers finish on the way out."""
    stream = PledgeStream(harness.recorder)
    await stream.setup()
    load = asyncio.create_task(stream.run(budget, workers), name="steady-pledges")
    try:
        yield stream
    finally:
        budget.close()
        await load


def refusals(errors: Mapping[str, int]) -> dict[str, int]:
    """The failures other than a connection to a dead or restarting process (httpx's ConnectError, ReadError,
    RemoteProtocolError): HTTP error statuses, timeouts."""
    return {key: count for key, count in errors.items() if not key.split(" ", 1)[-1].endswith("Error")}


def report(summary: FaultSummary, tmp_path: Path) -> None:
    figures = json.dumps(summary.to_json(), indent=2)
    (tmp_path / "fault-summary.json").write_text(figures + "\n", encoding="utf-8")
    print(f"\n{summary.name}: {figures}")


def assert_clean(summary: FaultSummary) -> None:
    assert summary.events_checked > 0, "no events were checked"
    assert summary.lost == 0 and summary.duplicated == 0 and summary.invented == 0, summary.problems[:20]
    assert not summary.failed_checks, summary.problems[:20]
    assert not summary.problems, summary.problems[:20]
