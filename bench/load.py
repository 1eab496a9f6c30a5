"""Load generators over real HTTP, bounded in count and in time.

* closed_loop: N concurrent clients, each sending its next request when the previous one answered; measures
  the throughput a server sustains. Bounded by a deadline and a maximum count.
* steady_rate: requests started on a fixed schedule (open loop) whatever the answers, as real users do; used
  for latency under a known load. Bounded by rate x seconds requests and an in-flight cap.

The client's own CPU time is reported: on a 2-core machine a client that burns a whole core caps the figure, and
the notes must say so.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

Send = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]
MAX_IN_FLIGHT = 256


@dataclass
class LoadResult:
    completed: int = 0
    errors: int = 0
    seconds: float = 0.0
    client_cpu: float = 0.0
    server_cpu: float = 0.0
    first_error: str | None = None
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    @property
    def server_cpu_per_request(self) -> float:
        return self.server_cpu / self.completed if self.completed else 0.0

    @property
    def client_core_share(self) -> float:
        """Fraction of one core the load generator used while it ran."""
        return self.client_cpu / self.seconds if self.seconds else 0.0

    def record(self, response: httpx.Response | BaseException, took: float) -> None:
        if isinstance(response, httpx.Response) and response.is_success:
            self.completed += 1
            self.latencies.append(took)
            return
        self.errors += 1
        if self.first_error is None:
            detail = (
                f"{response.status_code} {response.text[:300]}" if isinstance(response, httpx.Response) else response
            )
            self.first_error = repr(detail)


def new_client(concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60.0))


async def _timed(client: httpx.AsyncClient, send: Send, n: int, result: LoadResult) -> None:
    began = time.perf_counter()
    try:
        response: httpx.Response | BaseException = await send(client, n)
    except httpx.HTTPError as exc:
        response = exc
    result.record(response, time.perf_counter() - began)


async def closed_loop(
    client: httpx.AsyncClient, send: Send, concurrency: int, seconds: float, limit: int
) -> LoadResult:
    result = LoadResult()
    numbers = itertools.count()
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline and (n := next(numbers)) < limit:
            await _timed(client, send, n, result)

    began, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds, result.client_cpu = time.perf_counter() - began, time.process_time() - cpu
    return result


async def steady_rate(
    client: httpx.AsyncClient, send: Send, rate: float, seconds: float, drain_seconds: float = 30.0
) -> LoadResult:
    """Starts rate x seconds requests on schedule; a server slower than the rate queues them (at most
    MAX_IN_FLIGHT at once). Requests still waiting `drain_seconds` after the schedule ends are cancelled and
    counted as errors, so an overloaded server cannot stretch the run without bound."""
    result = LoadResult()
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)
    tasks: list[asyncio.Task[None]] = []

    async def one(n: int) -> None:
        async with slots:
            await _timed(client, send, n, result)

    began, cpu = time.perf_counter(), time.process_time()
    for n in range(int(rate * seconds)):
        delay = began + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n)))
    _, late = await asyncio.wait(tasks, timeout=drain_seconds) if tasks else (set(), set())
    for task in late:
        task.cancel()
    result.errors += len(late)
    result.seconds, result.client_cpu = time.perf_counter() - began, time.process_time() - cpu
    return result


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile; 0.0 for no values (the row then says what is missing)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]
