"""Follow aidtrail events over Server-Sent Events, the way an app without a Kafka client would.

    python examples/sse_follower.py --url http://127.0.0.1:8003 --token "$TOKEN" \
        --type org.aidtrail.batch. --shipment-id ship-1 --max-events 20 --timeout 60

It prints one line per event (`<ce_type> <ce_subject> <ce_id>`), reconnects after any interruption with the
last SSE id it saw as `Last-Event-ID` (which resumes exactly: nothing missed, nothing repeated), honours
`event: overflow` by reconnecting at once, drops any event id it has already printed (belt and braces), and stops
after --max-events events or --timeout seconds, so it can run unattended in CI. It needs only httpx.
A summary goes to stderr; the exit status is 0 when it stopped on --max-events, 2 on timeout, 1 on a refusal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

RECONNECT_SECONDS = 0.5


@dataclass
class SseMessage:
    """One dispatched SSE message. `id` is None when the message carried no id field."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    comment: bool = False


@dataclass
class _Block:
    event: str = ""
    data: list[str] = field(default_factory=list)
    id: str | None = None
    comment: bool = False
    fields: int = 0


async def iter_messages(lines: AsyncIterator[str]) -> AsyncIterator[SseMessage]:
    """Parse an event stream (WHATWG HTML, "Server-sent events"); a blank line ends each message.

    Blocks that only carry an id (the server's position updates) or only a comment (heartbeats) are yielded
    too, so a caller can track the position and see that the connection is alive.
    """
    block = _Block()
    async for line in lines:
        if line == "":
            if block.fields or block.comment:
                yield SseMessage(block.event or "message", "\n".join(block.data), block.id, block.comment)
            block = _Block()
            continue
        if line.startswith(":"):
            block.comment = True
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        block.fields += 1
        if name == "data":
            block.data.append(value)
        elif name == "event":
            block.event = value
        elif name == "id" and "\0" not in value:
            block.id = value


@dataclass
class Follower:
    """Reconnecting SSE client state: the last id is the stream position to resume from."""

    url: str
    token: str
    params: dict[str, Any]
    max_events: int
    on_event: Callable[[dict[str, Any]], None]
    last_event_id: str | None = None
    seen: set[str] = field(default_factory=set)
    received: int = 0
    duplicates: int = 0
    reconnects: int = 0
    overflows: int = 0

    @property
    def done(self) -> bool:
        return self.received >= self.max_events

    def headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "text/event-stream"}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        return headers

    def handle(self, message: SseMessage) -> bool:
        """Apply one message; False when the server asked us to reconnect (overflow, unavailable)."""
        if message.id is not None:
            self.last_event_id = message.id
        if message.event in ("overflow", "unavailable"):
            self.overflows += message.event == "overflow"
            print(f"server sent {message.event}: {message.data}", file=sys.stderr)
            return False
        if message.event == "message" and message.data:
            event = json.loads(message.data)
            if event["id"] in self.seen:
                self.duplicates += 1
            else:
                self.seen.add(event["id"])
                self.received += 1
                self.on_event(event)
        return True

    async def run_once(self, client: httpx.AsyncClient) -> None:
        async with client.stream("GET", self.url, params=self.params, headers=self.headers()) as response:
            if response.status_code in (400, 401, 403):
                await response.aread()
                raise PermissionError(f"{response.status_code}: {response.text}")
            response.raise_for_status()
            async for message in iter_messages(response.aiter_lines()):
                if not self.handle(message) or self.done:
                    return

    async def run(self, client: httpx.AsyncClient) -> None:
        """Follow until --max-events; every interruption is a reconnect from the last id."""
        while not self.done:
            with contextlib.suppress(httpx.TransportError, httpx.HTTPStatusError):
                await self.run_once(client)
            if not self.done:
                self.reconnects += 1
                await asyncio.sleep(RECONNECT_SECONDS)


def print_event(event: dict[str, Any]) -> None:
    print(f"{event['type']} {event['subject']} {event['id']}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Follow aidtrail events over SSE.")
    parser.add_argument("--url", default="http://127.0.0.1:8003", help="Base URL of a service serving the stream.")
    parser.add_argument("--token", required=True, help="Bearer token (aidtrail token --role dispatcher --sub me).")
    parser.add_argument("--type", action="append", default=[], help="ce_type or prefix ending in '.'; repeatable.")
    for name in ("batch-id", "shipment-id", "site-id", "recipient-id"):
        parser.add_argument(f"--{name}", help=f"Only events of this {name.replace('-id', '')}.")
    parser.add_argument("--from", dest="start", choices=("earliest", "latest"), default="latest")
    parser.add_argument("--last-event-id", help="Resume from this position (an id printed by an earlier run).")
    parser.add_argument("--max-events", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=60.0, help="Give up after this many seconds.")
    return parser.parse_args(argv)


def stream_params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {"from": args.start}
    if args.type:
        params["type"] = args.type
    for name in ("batch_id", "shipment_id", "site_id", "recipient_id"):
        if getattr(args, name):
            params[name] = getattr(args, name)
    return params


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = args.url.rstrip("/") + "/events/stream"
    follower = Follower(url, args.token, stream_params(args), args.max_events, print_event, args.last_event_id)
    started = time.monotonic()
    status = 0
    try:
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None)) as client:
            await asyncio.wait_for(follower.run(client), timeout=args.timeout)
    except TimeoutError:
        status = 2
    except PermissionError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    print(
        f"received {follower.received} events in {time.monotonic() - started:.1f}s "
        f"({follower.duplicates} duplicates dropped, {follower.reconnects} reconnects, "
        f"{follower.overflows} overflows); last id {follower.last_event_id}",
        file=sys.stderr,
    )
    return status


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
