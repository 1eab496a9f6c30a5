"""Whether the services' memory stays bounded under load: their RSS sampled through a run, and its trend."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psutil  # type: ignore[import-untyped,unused-ignore]

from shared.devstack.processes import Stack

RSS_INTERVAL_SECONDS = 1.0
# Memory is bounded when the peak of the last third of a run stays within this of the first third's peak.
RSS_GROWTH_FACTOR = 1.5
RSS_MARGIN_BYTES = 32 * 1024 * 1024


def process_rss(pid: int) -> int:
    """Resident memory of a service process and any children it started."""
    try:
        process = psutil.Process(pid)
        return int(process.memory_info().rss) + sum(
            int(child.memory_info().rss) for child in process.children(recursive=True)
        )
    except psutil.Error:
        return 0


@dataclass(frozen=True)
class MemoryTrend:
    """Whether a service's memory stays bounded: the peak of the last third of the samples against the first's.

    A leak grows with the work done, so over a run the later peaks keep rising above the early ones; caches,
    connection pools and the allocator's arenas fill early and then stay flat. A factor of 1.5 plus 32 MB absorbs
    allocator noise and a cache that fills late in a short run. Peaks, not means, so one GC cycle neither hides nor
    fakes growth."""

    service: str
    samples: int
    first_peak: int
    last_peak: int

    @property
    def bounded(self) -> bool:
        return self.last_peak <= self.first_peak * RSS_GROWTH_FACTOR + RSS_MARGIN_BYTES

    def to_json(self) -> dict[str, Any]:
        mb = 1024 * 1024
        return {
            "samples": self.samples,
            "first_third_peak_mb": round(self.first_peak / mb, 1),
            "last_third_peak_mb": round(self.last_peak / mb, 1),
            "bounded": self.bounded,
        }


def memory_trend(service: str, samples: list[int]) -> MemoryTrend:
    third = max(1, len(samples) // 3)
    return MemoryTrend(service, len(samples), max(samples[:third], default=0), max(samples[-third:], default=0))


class RssSampler:
    """Samples each service process's RSS at a fixed interval while the load runs."""

    def __init__(self, pids: Mapping[str, int], interval: float = RSS_INTERVAL_SECONDS):
        self.pids = dict(pids)
        self.interval = interval
        self.samples: dict[str, list[int]] = {name: [] for name in pids}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rss-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.sample()

    def sample(self) -> None:
        for name, pid in self.pids.items():
            if rss := process_rss(pid):
                self.samples[name].append(rss)

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def trends(self) -> list[MemoryTrend]:
        return [memory_trend(name, samples) for name, samples in self.samples.items()]


def stack_pids(stack: Stack) -> dict[str, int]:
    return {name: svc.process.pid for name, svc in stack.services.items() if svc.process is not None}
