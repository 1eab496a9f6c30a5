"""Test harness: run services in-process against the real broker and a real database, and wait on conditions.

Each test gets its own topic prefix, so its topics and consumer groups are its own and tests never see each
other's events. Waiting is always on a condition with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import importlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI

from shared.devstack.processes import Stack, StackConfig
from shared.settings import Settings
from shared.web.auth import Role, mint_token
from shared.web.runtime import ServiceRuntime

T = TypeVar("T")
POLL_SECONDS = 0.05
TEST_TOPIC_PARTITIONS = 3  # enough to exercise several partitions, few enough that thousands of test topics stay cheap
DEFAULT_DEADLINE_SECONDS = 30.0


async def wait_until(
    probe: Callable[[], Awaitable[T | None]], *, what: str, deadline: float = DEFAULT_DEADLINE_SECONDS
) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` if the deadline passes."""
    until = time.monotonic() + deadline
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > until:
            raise AssertionError(f"timed out after {deadline:.0f}s waiting for {what}")
        await asyncio.sleep(POLL_SECONDS)


def new_topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def service_settings(
    service: str, database_url: str, topic_prefix: str, kafka_bootstrap: str, **extra: Any
) -> Settings:
    return Settings(
        service=service,
        database_url=database_url,
        topic_prefix=topic_prefix,
        kafka_bootstrap=kafka_bootstrap,
        relay_poll_seconds=0.2,
        **{"topic_partitions": TEST_TOPIC_PARTITIONS, **extra},
    )


@dataclass
class ServiceHandle:
    """A running in-process service: its app, runtime and an HTTP client that signs requests."""

    name: str
    app: FastAPI
    settings: Settings
    http: httpx.AsyncClient

    @property
    def runtime(self) -> ServiceRuntime:
        runtime: ServiceRuntime = self.app.state.runtime
        return runtime

    def token(self, role: Role | str, subject: str = "tester", **scope: Any) -> str:
        return mint_token(subject, Role(role), settings=self.settings, **scope)

    def auth(self, role: Role | str = Role.admin, subject: str = "tester", **scope: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, subject, **scope)}"}

    async def request(self, method: str, path: str, *, role: Role | str = Role.admin, **kwargs: Any) -> httpx.Response:
        headers = {**self.auth(role), **kwargs.pop("headers", {})}
        return await self.http.request(method, path, headers=headers, **kwargs)

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path, **kwargs)


def build_app(service: str, settings: Settings) -> FastAPI:
    module = importlib.import_module(f"services.{service}.bootstrap")
    app: FastAPI = module.create(settings)
    return app


@asynccontextmanager
async def running_service(service: str, settings: Settings, *, wait_ready: bool = True) -> AsyncIterator[ServiceHandle]:
    app = build_app(service, settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{service}") as http:
            handle = ServiceHandle(service, app, settings, http)
            if wait_ready:
                await wait_until(lambda: _consumers_assigned(handle), what=f"{service} to join Kafka")
            yield handle


async def _consumers_assigned(handle: ServiceHandle) -> bool:
    runtime = handle.runtime
    if not runtime.kafka_started:
        return False
    return all(c.consumer is not None and c.consumer.assignment() for c in runtime.consumers)


@asynccontextmanager
async def warehouse_process(
    kafka_bootstrap: str, topic_prefix: str, run_dir: Path, database_url: str
) -> AsyncIterator[tuple[Stack, Settings]]:
    """The warehouse as a real subprocess, for tests that park events or kill it; with settings whose JWT secret
    matches the stack's, so tests can mint tokens it accepts."""
    config = StackConfig(
        run_dir=run_dir,
        topic_prefix=topic_prefix,
        kafka_bootstrap=kafka_bootstrap,
        database_urls={"warehouse": database_url},
    )
    stack = Stack(config, services=("warehouse",))
    settings = Settings(topic_prefix=topic_prefix, kafka_bootstrap=kafka_bootstrap, jwt_secret=config.jwt_secret)
    try:
        await stack.start()
        yield stack, settings
    finally:
        stack.stop()
