"""What the SSE suites share: publishing onto the broker, a real HTTP server (uvicorn) serving the pledge service,
and a client that records everything it is sent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from fastapi import FastAPI

from examples.sse_follower import iter_messages
from services.pledge.bootstrap import SPEC
from shared.events.envelope import encode_data, to_headers
from shared.messaging.topics import ensure_topics
from shared.settings import Settings
from shared.streaming import StreamConfig, make_stream_router
from shared.streaming import position as stream_position
from shared.streaming.reader import topic_partitions
from shared.streaming.stream import covers
from shared.web.app_factory import create_app
from shared.web.auth import Role, mint_token
from tests.fixtures.databases import sqlite_url
from tests.harness import service_settings, wait_until
from tests.integration.sse_scenario import Published

TEST_STREAM = StreamConfig(heartbeat_seconds=0.2, retry_ms=100, overflow_grace_seconds=5.0)
DEADLINE = 45.0


# --- broker helpers ------------------------------------------------------------------------------------------


async def publish(settings: Settings, events: Sequence[Published], timestamp_ms: int | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = []
        for published in events:
            topic = settings.batch_topic if published.batch else settings.reference_topic
            envelope = published.envelope
            sent.append(
                await producer.send(
                    topic,
                    encode_data(envelope),
                    key=envelope.subject.encode(),
                    headers=to_headers(envelope),
                    timestamp_ms=timestamp_ms,
                )
            )
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def end_offsets(settings: Settings) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, [settings.batch_topic, settings.reference_topic])
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        return ends
    finally:
        await consumer.stop()


# --- a real HTTP server -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class StreamServer:
    url: str
    settings: Settings
    app: FastAPI

    @property
    def stream_url(self) -> str:
        return f"{self.url}/events/stream"

    def token(self, role: Role, **scope: Any) -> str:
        return mint_token(f"{role}-tester", role, settings=self.settings, **scope)


def listening_socket(port: int, send_buffer: int | None) -> socket.socket:
    """The server's socket, made here so a test can shrink its send buffer (accepted connections inherit it,
    and a fixed size turns off the kernel's autotuning): that is how a slow network looks to the server."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if send_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.bind(("127.0.0.1", port))
    return sock


@asynccontextmanager
async def serving(
    settings: Settings, config: StreamConfig = TEST_STREAM, port: int = 0, send_buffer: int | None = None
) -> AsyncIterator[StreamServer]:
    """The pledge service with the stream router, on a real socket; stopping it ends open streams."""
    spec = dataclasses.replace(SPEC, routers=[*SPEC.routers, make_stream_router(config)])
    app = create_app(spec, settings)
    sock = listening_socket(port, send_buffer)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, timeout_graceful_shutdown=5))
    task = asyncio.create_task(server.serve(sockets=[sock]))

    async def ready() -> bool:
        runtime = getattr(app.state, "runtime", None)
        return server.started and runtime is not None and runtime.kafka_started

    try:
        await wait_until(ready, what="the stream server to start and create its topics")
        yield StreamServer(f"http://127.0.0.1:{sock.getsockname()[1]}", settings, app)
    finally:
        server.should_exit = True
        await task
        sock.close()


async def stream_settings(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Settings:
    """Topics are created up front, so a test may publish before any server runs."""
    settings = service_settings("pledge", sqlite_url(tmp_path), topic_prefix, kafka_bootstrap, topic_partitions=3)
    await ensure_topics(settings)
    return settings


# --- a client that records everything -----------------------------------------------------------------------


@dataclass
class Collected:
    events: list[dict[str, Any]] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    last_id: str | None = None
    pings: int = 0

    @property
    def ids(self) -> list[str]:
        return [e["id"] for e in self.events]

    def position(self, settings: Settings) -> dict[TopicPartition, int]:
        assert self.last_id, "no position received yet"
        codes = stream_position.TopicCodes(settings.batch_topic, settings.reference_topic)
        return stream_position.decode(self.last_id, codes)


Stop = Callable[[Collected], bool]


async def read_stream(
    server: StreamServer,
    token: str,
    stop: Stop,
    params: dict[str, Any] | None = None,
    last_event_id: str | None = None,
    into: Collected | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Collected:
    """Read one connection until `stop` says so (then disconnect) or the server ends the stream."""
    seen = into or Collected()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    async with (
        httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(10.0, read=None)) as http,
        http.stream("GET", server.stream_url, params=params or {}, headers=headers) as response,
        asyncio.timeout(DEADLINE),
    ):
        assert response.status_code == 200, await response.aread()
        async for message in iter_messages(response.aiter_lines()):
            seen.pings += message.comment
            seen.last_id = message.id or seen.last_id
            if message.event != "message" or message.data:
                seen.kinds.append(message.event)
            if message.event == "message" and message.data:
                seen.events.append(json.loads(message.data))
            if stop(seen):
                break
    return seen


def caught_up(settings: Settings, ends: dict[TopicPartition, int]) -> Stop:
    return lambda seen: seen.last_id is not None and covers(seen.position(settings), ends)


def after_ready(seen: Collected) -> bool:
    return "ready" in seen.kinds
