"""What the security suites need to walk a service app: its routes, a concrete URL for each, and a raw ASGI call.

The call is raw ASGI rather than httpx's ASGI transport because that transport waits for the whole response, and a
route that streams (Server-Sent Events) never ends: here the reply is complete at the first body chunk of a stream.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fastapi.routing
import orjson
from fastapi import FastAPI
from starlette.types import Message

from shared.settings import Settings
from shared.web.auth import Role, mint_token
from tests.harness import build_app

PROBE = "probe-1"  # every path parameter, and every scope claim of a probing token, so scope never refuses
REPLY_DEADLINE_SECONDS = 60.0
_PARAMETER = re.compile(r"\{(\w+)(?::\w+)?\}")


def app_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path template) of every route the app serves, including FastAPI's own documentation routes.

    FastAPI 0.160+ keeps included routers as branches (`iter_route_contexts` flattens them); older releases
    list every route in `app.routes` directly.
    """
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    routes: Any = flatten(app.routes) if flatten else app.routes
    for route in routes:
        path = getattr(route, "path", None)
        for method in sorted(getattr(route, "methods", None) or ()):
            if path is not None:
                yield method, path


def service_routes(service: str) -> set[tuple[str, str]]:
    """The routes of a freshly built app; building connects to nothing, so no broker or database is needed."""
    return set(app_routes(build_app(service, Settings(service=service))))


def concrete_path(template: str) -> str:
    """Fill each path parameter: numbers for `*_no` parameters (they are ints), the probe id for every other."""
    return _PARAMETER.sub(lambda match: "1" if match.group(1).endswith("_no") else PROBE, template)


def probing_token(role: Role, settings: Settings, subject: str = "prober") -> str:
    """A token whose scope covers the probe id along every dimension, so only the role decides the answer."""
    return mint_token(subject, role, sites=[PROBE], recipient_id=PROBE, donor_id=PROBE, settings=settings)


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    def error_code(self) -> str | None:
        try:
            body = self.json()
        except orjson.JSONDecodeError:
            return None
        error = body.get("error") if isinstance(body, dict) else None
        return error.get("code") if isinstance(error, dict) else None


def _scope(method: str, path: str, headers: dict[str, str], query: str) -> dict[str, Any]:
    encoded = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"security-test"), *encoded],
        "client": ("127.0.0.1", 50000),
        "server": ("security-test", 80),
    }


async def call(
    app: FastAPI,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    query: str = "",
) -> Reply:
    """One request into the app. Waits for the whole body, or only its first chunk if it is an event stream."""
    status = 0
    reply_headers: dict[str, str] = {}
    chunks: list[bytes] = []
    complete = asyncio.Event()
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await complete.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            reply_headers.update((k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            streaming = reply_headers.get("content-type", "").startswith("text/event-stream")
            if streaming or not message.get("more_body", False):
                complete.set()

    scope = _scope(method, path, headers or {}, query)
    await _run_until_complete(app(scope, receive, send), complete, f"{method} {path}", lambda: status)
    return Reply(status, reply_headers, b"".join(chunks))


async def _run_until_complete(app_call: Any, complete: asyncio.Event, what: str, status: Any) -> None:
    """Run the app until the reply is complete; a streaming app is then cancelled, as a client hanging up would."""
    task = asyncio.ensure_future(app_call)
    waiter = asyncio.ensure_future(complete.wait())
    try:
        await asyncio.wait({task, waiter}, timeout=REPLY_DEADLINE_SECONDS, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if not complete.is_set():
            raise AssertionError(f"{what} did not answer within {REPLY_DEADLINE_SECONDS:.0f}s")
        return
    if (error := task.exception()) is not None and not status():
        raise error  # the app failed before answering at all; with an answer (a 500), the status tells the story
