"""A bounded load run: concurrent commands against the services' HTTP APIs, as their real clients send them.

`soak` starts a fresh stack, runs the `Journeys` workload (`shared.devstack.workloads`) while sampling the
services' RSS (`shared.devstack.memory`), then checks that every acknowledged command reached the log and every
projection exactly once (`shared.devstack.recorder` keeps that record) and that memory stayed bounded.

Always bounded: a Budget hands out at most `max_commands` command slots and none after `seconds`, and every wait
for an event to travel between services has a deadline. `python -m shared.devstack.load --minutes 5` is the full
mode.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.devstack.faults import FaultSummary, verify_no_loss
from shared.devstack.memory import MemoryTrend, RssSampler, stack_pids
from shared.devstack.processes import SERVICE_NAMES, Stack, StackConfig
from shared.devstack.recorder import Budget, Recorder, http_client
from shared.devstack.workloads import Journeys
from shared.scenario.client import ScenarioClient
from shared.settings import Settings

CI_SECONDS = 30.0

# --- the soak: Journeys on a fresh stack, then the checks -------------------------------------------------------


@dataclass(frozen=True)
class LoadLimits:
    seconds: float = CI_SECONDS
    max_commands: int = 20_000
    workers: int = 6


@dataclass
class SoakResult:
    summary: FaultSummary
    memory: list[MemoryTrend]
    recorder: Recorder
    journeys: int

    @property
    def ok(self) -> bool:
        return self.summary.ok and not self.recorder.errors and all(trend.bounded for trend in self.memory)

    def to_json(self) -> dict[str, Any]:
        latencies = sorted(command.seconds for command in self.recorder.acknowledged)
        return {
            **self.summary.to_json(),
            "commands_sent": self.recorder.attempts,
            "journeys_completed": self.journeys,
            "error_samples": self.recorder.error_samples,
            "latency_ms": latency_figures(latencies),
            "rss": {trend.service: trend.to_json() for trend in self.memory},
        }


def latency_figures(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {}
    return {
        "median": round(statistics.median(latencies) * 1000, 1),
        "p95": round(latencies[int(len(latencies) * 0.95) - 1 if len(latencies) > 1 else 0] * 1000, 1),
        "max": round(latencies[-1] * 1000, 1),
    }


async def soak(
    run_dir: Path, kafka_bootstrap: str, limits: LoadLimits, database_urls: dict[str, str] | None = None
) -> SoakResult:
    """Start the four services, run `Journeys` within `limits` while sampling RSS, settle and check everything."""
    began = time.monotonic()
    prefix = f"soak{uuid.uuid4().hex[:8]}"
    config = StackConfig(
        run_dir=run_dir, topic_prefix=prefix, kafka_bootstrap=kafka_bootstrap, database_urls=database_urls or {}
    )
    stack = Stack(config)
    settings = Settings(topic_prefix=prefix, kafka_bootstrap=kafka_bootstrap)
    client = ScenarioClient({name: stack.url(name) for name in SERVICE_NAMES}, settings, http_client())
    try:
        await stack.start()  # inside the try: a service that never gets ready must not leave the others running
        recorder = Recorder(client)
        journeys = Journeys(recorder, limits.workers)
        await journeys.setup(f"{prefix}.dispatch.reference")
        sampler = RssSampler(stack_pids(stack))
        sampler.start()
        await journeys.run(Budget(limits.max_commands, limits.seconds))
        await sampler.stop()
        summary = FaultSummary("load", acknowledged=len(recorder.acknowledged), errors=dict(recorder.errors))
        await verify_no_loss(stack, settings, recorder.expected, summary)
        summary.seconds = time.monotonic() - began
        return SoakResult(summary, sampler.trends(), recorder, journeys.completed)
    finally:
        await client.close()
        stack.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Steady load on all four services, then loss and memory checks.")
    parser.add_argument("--minutes", type=float, default=CI_SECONDS / 60, help="How long the load runs.")
    parser.add_argument("--workers", type=int, default=LoadLimits.workers, help="Concurrent journeys.")
    parser.add_argument("--max-commands", type=int, default=LoadLimits.max_commands, help="Upper bound on commands.")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers.")
    parser.add_argument("--run-dir", type=Path, default=None, help="Where the services' databases and logs go.")
    args = parser.parse_args(argv)
    limits = LoadLimits(seconds=args.minutes * 60, max_commands=args.max_commands, workers=args.workers)
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="aidtrail-soak-"))
    result = asyncio.run(soak(run_dir, args.bootstrap, limits))
    print(json.dumps(result.to_json(), indent=2))
    print(f"{'OK' if result.ok else 'FAILED'}: logs and databases in {run_dir}", file=sys.stderr)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
