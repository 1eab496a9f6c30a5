"""An HTTP client for scenarios: one base URL per service, tokens per role, and waits with deadlines.

The scenario talks to the services only through their public APIs, as warehouse operators, dispatchers,
donors and hospital staff would; propagation between services happens through Kafka alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.settings import Settings
from shared.web.auth import Role, mint_token

POLL_SECONDS = 0.1
PROPAGATION_DEADLINE_SECONDS = 60.0


class ScenarioError(RuntimeError):
    """A step got an answer it did not expect; the message has the request and the service's reply."""


@dataclass
class Actor:
    role: Role
    subject: str
    sites: tuple[str, ...] = ()
    recipient_id: str | None = None
    donor_id: str | None = None


@dataclass
class ScenarioClient:
    urls: dict[str, str]
    settings: Settings
    http: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=30.0))
    calls: int = 0

    def token(self, actor: Actor) -> str:
        return mint_token(
            actor.subject,
            actor.role,
            sites=actor.sites,
            recipient_id=actor.recipient_id,
            donor_id=actor.donor_id,
            settings=self.settings,
        )

    async def call(
        self, service: str, method: str, path: str, actor: Actor, body: Any = None, expect: tuple[int, ...] = (200, 201)
    ) -> Any:
        headers = {"Authorization": f"Bearer {self.token(actor)}"}
        response = await self.http.request(method, self.urls[service] + path, json=body, headers=headers)
        self.calls += 1
        if response.status_code not in expect:
            raise ScenarioError(f"{method} {service}{path} -> {response.status_code}: {response.text[:800]}")
        return response.json() if response.content else None

    async def wait_for(self, service: str, path: str, actor: Actor, accept: Callable[[Any], bool], what: str) -> Any:
        """Poll a read route until `accept` holds: events travel between services asynchronously."""

        async def probe() -> Any:
            response = await self.http.get(
                self.urls[service] + path, headers={"Authorization": f"Bearer {self.token(actor)}"}
            )
            if response.status_code == 200 and accept(response.json()):
                return response.json()
            return None

        return await wait_until(probe, what=what)

    async def close(self) -> None:
        await self.http.aclose()


async def wait_until(
    probe: Callable[[], Awaitable[Any]], *, what: str, deadline: float = PROPAGATION_DEADLINE_SECONDS
) -> Any:
    until = time.monotonic() + deadline
    while True:
        result = await probe()
        if result is not None:
            return result
        if time.monotonic() > until:
            raise ScenarioError(f"timed out after {deadline:.0f}s waiting for {what}")
        await asyncio.sleep(POLL_SECONDS)
