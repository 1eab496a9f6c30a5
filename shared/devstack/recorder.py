"""The load's client side: bounded command slots, and a recorder of every answer the services gave.

Every command the system acknowledged (2xx) is kept with the events it must have produced (`faults.Expected`), so
that `faults.verify_no_loss` can prove each of them reached the log and every projection exactly once; every other
answer is only counted, by service and status (503s that carried a Retry-After separately). Every wait for an event
to travel between services has a deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.devstack.log_reader import Expected
from shared.scenario.client import Actor, ScenarioClient
from shared.scenario.hubei2020 import ADMIN

PROPAGATION_DEADLINE_SECONDS = 120.0
POLL_SECONDS = 0.1

# uvicorn closes a keep-alive connection idle for 5 s, and httpx keeps idle connections for 5 s too: a request sent
# on a connection the server is closing at that very moment fails with ReadError. Expiring ours sooner avoids the race.
KEEPALIVE_EXPIRY_SECONDS = 2.0
HTTP_TIMEOUT_SECONDS = 30.0

Expects = Callable[[Any], Iterable[Expected]]


class LoadError(RuntimeError):
    """A setup command was refused, or an event did not travel between services before the deadline."""


def nothing(_response: Any) -> Iterable[Expected]:
    """For a command whose events the checks need not name."""
    return ()


def http_client() -> httpx.AsyncClient:
    """The load's HTTP client: one pool for all workers, idle connections dropped before the server drops them."""
    limits = httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS)
    return httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS, limits=limits)


# --- bounds -----------------------------------------------------------------------------------------------------


class Budget:
    """Command slots: at most `max_commands`, none after `seconds`, and at most `per_second` when paced.

    Pacing is what makes the load steady (a fixed rate whatever the fault), instead of as fast as the machine
    allows, which would only measure how long the consumers need to catch up afterwards."""

    def __init__(self, max_commands: int, seconds: float, per_second: float | None = None):
        self.max_commands = max_commands
        self.until = time.monotonic() + seconds
        self.interval = 1.0 / per_second if per_second else 0.0
        self.issued = 0
        self._next = time.monotonic()
        self._closed = False

    @property
    def open(self) -> bool:
        return not self._closed and self.issued < self.max_commands and time.monotonic() < self.until

    def close(self) -> None:
        self._closed = True

    async def slot(self) -> bool:
        """True when the caller may send one more command (after waiting for its turn when paced)."""
        if not self.open:
            return False
        self.issued += 1
        if self.interval:
            now = time.monotonic()
            turn = max(self._next, now)
            self._next = turn + self.interval
            await asyncio.sleep(turn - now)
        return not self._closed and time.monotonic() < self.until


# --- recording --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Acknowledged:
    """A command that got a 2xx, with the events it must have written."""

    service: str
    path: str
    status: int
    response: Any
    expected: tuple[Expected, ...]
    seconds: float


@dataclass
class Recorder:
    """Sends commands as one client of the services and keeps the record the checks compare with the log."""

    client: ScenarioClient
    acknowledged: list[Acknowledged] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    retry_after: Counter[str] = field(default_factory=Counter)
    error_samples: dict[str, str] = field(default_factory=dict)
    slowest_failure: dict[str, float] = field(default_factory=dict)
    attempts: int = 0

    async def command(
        self, service: str, path: str, actor: Actor, body: Any = None, expects: Expects = nothing
    ) -> Any | None:
        """POST one command; the answer's body on a 2xx, else None (the failure is counted, never raised)."""
        headers = {"Authorization": f"Bearer {self.client.token(actor)}"}
        began = time.monotonic()
        self.attempts += 1
        try:
            response = await self.client.http.post(self.client.urls[service] + path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            self._failed(service, type(exc).__name__, str(exc), time.monotonic() - began)
            return None
        if not 200 <= response.status_code < 300:
            self._failed(service, str(response.status_code), response.text, time.monotonic() - began)
            if response.status_code == 503 and "retry-after" in response.headers:
                self.retry_after[service] += 1
            return None
        answer = response.json() if response.content else None
        elapsed = time.monotonic() - began
        self.acknowledged.append(
            Acknowledged(service, path, response.status_code, answer, tuple(expects(answer)), elapsed)
        )
        return answer

    def _failed(self, service: str, status: str, text: str, seconds: float) -> None:
        """Counted by service and status; the first answer of each kind and the slowest one are kept to show."""
        key = f"{service} {status}"
        self.errors[key] += 1
        self.error_samples.setdefault(key, text[:300])
        self.slowest_failure[key] = round(max(seconds, self.slowest_failure.get(key, 0.0)), 3)

    @property
    def expected(self) -> list[Expected]:
        return [identity for command in self.acknowledged for identity in command.expected]

    async def wait_acknowledged(self, count: int, what: str, deadline: float = PROPAGATION_DEADLINE_SECONDS) -> None:
        """Until `count` commands in all were acknowledged: how a fault test knows the load is really flowing."""

        async def enough() -> bool | None:
            return True if len(self.acknowledged) >= count else None

        await poll(enough, what, deadline)

    async def read(self, service: str, path: str, actor: Actor = ADMIN) -> Any | None:
        """A GET that tolerates a service being away (fault tests restart them): None unless it answers 200."""
        try:
            response = await self.client.http.get(
                self.client.urls[service] + path, headers={"Authorization": f"Bearer {self.client.token(actor)}"}
            )
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    async def wait_for(
        self, service: str, path: str, accept: Callable[[Any], bool], what: str, actor: Actor = ADMIN
    ) -> Any:
        async def probe() -> Any | None:
            found = await self.read(service, path, actor)
            return found if found is not None and accept(found) else None

        return await poll(probe, what, PROPAGATION_DEADLINE_SECONDS)


async def poll(probe: Callable[[], Awaitable[Any | None]], what: str, deadline: float) -> Any:
    until = time.monotonic() + deadline
    while (result := await probe()) is None:
        if time.monotonic() > until:
            raise LoadError(f"timed out after {deadline:.0f}s waiting for {what}")
        await asyncio.sleep(POLL_SECONDS)
    return result


async def required(recorder: Recorder, service: str, path: str, actor: Actor, body: Any, expects: Expects) -> Any:
    """A setup command: the workload cannot start without it."""
    answer = await recorder.command(service, path, actor, body, expects)
    if answer is None:
        raise LoadError(f"setup POST {service}{path} was refused: {dict(recorder.error_samples)}")
    return answer
