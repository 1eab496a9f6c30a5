"""The SSE stream against the real broker, served by a real HTTP server (uvicorn) mounted in the pledge service.

Events come from a scenario whose expected audience is written down by hand next to each event (its tags), so
the filters are checked against an independent answer, not against themselves. "Nothing missed, nothing
repeated" is checked by reading until the stream's position (its SSE id) covers the end of every partition.
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
import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from fastapi import FastAPI

from examples.sse_follower import Follower, iter_messages
from services.pledge.bootstrap import SPEC
from shared.domain.batch_fold import fold
from shared.events import batch_events as ev
from shared.events import reference_events as ref
from shared.events.envelope import Envelope, encode_data, to_headers
from shared.events.registry import parse_envelope, payload_data
from shared.messaging.topics import ensure_topics
from shared.settings import Settings
from shared.streaming import StreamConfig, make_stream_router, stream_stats
from shared.streaming import position as stream_position
from shared.streaming.reader import topic_partitions
from shared.streaming.stream import covers
from shared.web.app_factory import create_app
from shared.web.auth import Role, mint_token
from tests.fixtures.databases import sqlite_url
from tests.harness import service_settings, wait_until

TEST_STREAM = StreamConfig(heartbeat_seconds=0.2, retry_ms=100, overflow_grace_seconds=5.0)
DEADLINE = 45.0

# --- a scenario whose audiences are known by hand ------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    """One event and who must see it: shipment, site and recipient ids it belongs to (written by hand)."""

    envelope: Envelope
    batch: bool
    tags: frozenset[str]


def event(payload: ev.Payload, subject: str, *tags: str) -> Published:
    envelope = Envelope(
        type=payload.event_type,
        source="scenario",
        subject=subject,
        data=payload_data(payload),
        actor="operator:test",
        correlation_id="scenario",
    )
    return Published(envelope, payload.event_type.startswith("org.aidtrail.batch."), frozenset(tags))


def pledged(line: int, warehouse: str, designated: str | None) -> ev.BatchPledged:
    return ev.BatchPledged(
        pledge_id="p-1",
        donor_id="d-1",
        line_no=line,
        item="n95-mask",
        quantity=100,
        unit=ev.Unit.PIECE,
        warehouse_id=warehouse,
        designated_recipient_id=designated,
        purpose="frontline protection",
    )


def intake(site: str) -> list[ev.Payload]:
    return [
        ev.BatchReceived(site_id=site, quantity_received=100, condition=ev.Condition.GOOD),
        ev.BatchInspected(inspector="qc", standard_checked="N95", accepted=100, rejected=0, quarantined=0),
    ]


def batch_one() -> list[Published]:
    """Designated to r-1, travels on ship-1 through hub-1."""
    received, inspected = intake("wh-1")
    return [
        event(pledged(1, "wh-1", "r-1"), "b-1", "r-1", "wh-1"),
        event(received, "b-1", "r-1", "wh-1"),
        event(inspected, "b-1", "r-1", "wh-1"),
        event(ev.BatchAllocated(allocation_id="a-1", need_id="n-1", recipient_id="r-1", quantity=100), "b-1",
              "r-1", "wh-1"),
        event(ev.BatchPicked(allocation_id="a-1", quantity=100, picker="op"), "b-1", "r-1", "wh-1"),
        event(ev.BatchDispatched(shipment_id="ship-1", leg_no=1, from_site_id="wh-1", to_site_id="hub-1",
                                 carrier="SF", quantity=100), "b-1", "r-1", "wh-1", "hub-1", "ship-1"),
        event(ev.BatchArrivedAtHub(shipment_id="ship-1", leg_no=1, hub_site_id="hub-1"), "b-1",
              "r-1", "hub-1", "ship-1"),
        event(ev.BatchDepartedHub(shipment_id="ship-1", leg_no=2, hub_site_id="hub-1", to_site_id="site-r1",
                                  carrier="JD"), "b-1", "r-1", "hub-1", "ship-1", "site-r1"),
        event(ev.BatchDelivered(shipment_id="ship-1", site_id="site-r1", recipient_id="r-1", quantity=100), "b-1",
              "r-1", "ship-1", "site-r1"),
        event(ev.ReceiptConfirmed(recipient_id="r-1", quantity_received=100, signed_by="dr.wang"), "b-1",
              "r-1", "ship-1", "site-r1"),
    ]  # fmt: skip


def batch_two() -> list[Published]:
    """Undesignated until allocated to r-2; goes straight from wh-1 to r-2's site on ship-2."""
    received, inspected = intake("wh-1")
    return [
        event(pledged(2, "wh-1", None), "b-2", "wh-1"),
        event(received, "b-2", "wh-1"),
        event(inspected, "b-2", "wh-1"),
        event(ev.BatchAllocated(allocation_id="a-2", need_id="n-2", recipient_id="r-2", quantity=100), "b-2",
              "r-2", "wh-1"),
        event(ev.BatchPicked(allocation_id="a-2", quantity=100, picker="op"), "b-2", "r-2", "wh-1"),
        event(ev.BatchDispatched(shipment_id="ship-2", leg_no=1, from_site_id="wh-1", to_site_id="site-r2",
                                 carrier="SF", quantity=100), "b-2", "r-2", "wh-1", "ship-2", "site-r2"),
        event(ev.BatchDelivered(shipment_id="ship-2", site_id="site-r2", recipient_id="r-2", quantity=100), "b-2",
              "r-2", "ship-2", "site-r2"),
        event(ev.ReceiptConfirmed(recipient_id="r-2", quantity_received=100, signed_by="dr.li"), "b-2",
              "r-2", "ship-2", "site-r2"),
    ]  # fmt: skip


def batch_three() -> list[Published]:
    """Designated to r-1, still in stock at wh-2."""
    received, inspected = intake("wh-2")
    return [
        event(pledged(3, "wh-2", "r-1"), "b-3", "r-1", "wh-2"),
        event(received, "b-3", "r-1", "wh-2"),
        event(inspected, "b-3", "r-1", "wh-2"),
    ]


def leg(no: int, origin: str, destination: str) -> ref.ShipmentLeg:
    return ref.ShipmentLeg(leg_no=no, from_site_id=origin, to_site_id=destination, carrier="SF")


def reference_events() -> list[Published]:
    return [
        event(ref.DonorRegistered(donor_id="d-1", name="Xiaomi"), "d-1"),
        event(ref.SiteRegistered(site_id="hub-1", name="Xiantao hub", kind=ref.SiteKind.RELAY_HUB), "hub-1",
              "hub-1"),
        event(ref.SiteRegistered(site_id="site-r1", name="Jinyintan", kind=ref.SiteKind.RECIPIENT_FACILITY,
                                 recipient_id="r-1"), "site-r1", "site-r1", "r-1"),
        event(ref.RecipientRegistered(recipient_id="r-1", name="Jinyintan", kind=ref.RecipientKind.HOSPITAL,
                                      frontline=True, site_id="site-r1"), "r-1", "r-1", "site-r1"),
        event(ref.RecipientRegistered(recipient_id="r-2", name="Tongji", kind=ref.RecipientKind.HOSPITAL,
                                      frontline=True, site_id="site-r2"), "r-2", "r-2", "site-r2"),
        event(ref.NeedRegistered(need_id="n-1", recipient_id="r-1", item="n95-mask", quantity=100,
                                 priority=ref.Priority.CRITICAL), "n-1", "r-1"),
        event(ref.ShipmentPlanned(shipment_id="ship-1", recipient_id="r-1", batch_ids=["b-1"],
                                  legs=[leg(1, "wh-1", "hub-1"), leg(2, "hub-1", "site-r1")]), "ship-1",
              "ship-1", "r-1", "wh-1", "hub-1", "site-r1"),
        event(ref.ShipmentPlanned(shipment_id="ship-2", recipient_id="r-2", batch_ids=["b-2"],
                                  legs=[leg(1, "wh-1", "site-r2")]), "ship-2", "ship-2", "r-2", "wh-1", "site-r2"),
    ]  # fmt: skip


def scenario() -> list[Published]:
    return [*reference_events(), *batch_one(), *batch_two(), *batch_three()]


def expected_ids(events: Sequence[Published], tag: str, *, batch_only: bool = False) -> set[str]:
    return {p.envelope.id for p in events if tag in p.tags and (p.batch or not batch_only)}


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


@pytest.fixture
async def settings(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Settings:
    return await stream_settings(kafka_bootstrap, topic_prefix, tmp_path)


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


# --- tests ---------------------------------------------------------------------------------------------------


def test_the_scenario_is_a_history_the_fold_accepts() -> None:
    """Otherwise the stream would keep a refused batch's old state and the hand-written tags could not hold."""
    for batch in ("b-1", "b-2", "b-3"):
        history = [parse_envelope(p.envelope) for p in scenario() if p.batch and p.envelope.subject == batch]
        assert fold(history, batch) is not None


async def test_clients_with_different_filters_receive_exactly_their_events(settings: Settings) -> None:
    async with serving(settings) as server:
        admin = {"Authorization": f"Bearer {server.token(Role.admin)}"}
        ship = await read_stream(server, server.token(Role.dispatcher), after_ready, {"shipment_id": "ship-1"})
        hub = await read_stream(server, server.token(Role.operator), after_ready, {"site_id": "hub-1"})
        r2 = await read_stream(server, server.token(Role.recipient_staff, recipient_id="r-2"), after_ready,
                               {"type": "org.aidtrail.batch."})  # fmt: skip
        events = scenario()
        await publish(settings, events)
        async with httpx.AsyncClient(base_url=server.url, headers=admin) as http:
            assert (await http.post("/donors", json={"donor_id": "d-9", "name": "Oppo"})).status_code == 201
            line = {"item": "kn95-mask", "quantity": 50, "unit": "piece", "warehouse_id": "wh-9"}
            pledge = {"pledge_id": "p-9", "donor_id": "d-9", "designated_recipient_id": "r-2", "lines": [line]}
            assert (await http.post("/pledges", json=pledge)).status_code == 201
        await wait_until(lambda: _published_pledge(settings), what="the pledge service to publish p-9")
        ends = await end_offsets(settings)
        for seen, token, params in (
            (ship, server.token(Role.dispatcher), {"shipment_id": "ship-1"}),
            (hub, server.token(Role.operator), {"site_id": "hub-1"}),
            (r2, server.token(Role.recipient_staff, recipient_id="r-2"), {"type": "org.aidtrail.batch."}),
        ):
            await read_stream(server, token, caught_up(settings, ends), params, seen.last_id, into=seen)
    assert set(ship.ids) == expected_ids(events, "ship-1") and len(ship.ids) == len(set(ship.ids))
    assert set(hub.ids) == expected_ids(events, "hub-1") and len(hub.ids) == len(set(hub.ids))
    r2_subjects = {e["subject"] for e in r2.events}
    assert set(r2.ids) - {e["id"] for e in r2.events if e["subject"] == "p-9-1"} == expected_ids(
        events, "r-2", batch_only=True
    )
    assert "p-9-1" in r2_subjects, "the pledge designated to r-2 through the real API reaches r-2's staff"
    assert all(e["type"].startswith("org.aidtrail.batch.") for e in r2.events)


async def _published_pledge(settings: Settings) -> bool:
    return sum((await end_offsets(settings)).values()) >= len(scenario()) + 3  # donor, pledge, batch.pledged


async def test_recipient_staff_see_only_their_recipient_and_filters_survive_a_resume(settings: Settings) -> None:
    events = scenario()
    await publish(settings, events)
    ends = await end_offsets(settings)
    async with serving(settings) as server:
        token = server.token(Role.recipient_staff, recipient_id="r-1")
        first = await read_stream(server, token, lambda seen: len(seen.events) == 7, {"from": "earliest"})
        rest = await read_stream(server, token, caught_up(settings, ends), last_event_id=first.last_id)
    together = first.ids + rest.ids
    assert sorted(together) == sorted(expected_ids(events, "r-1")), "exactly r-1's events, each once"
    assert rest.kinds[0] == "ready"


async def test_a_client_that_disconnects_resumes_with_its_last_event_id_exactly_once(settings: Settings) -> None:
    events = scenario()
    await publish(settings, events[:15])
    async with serving(settings) as server:
        token = server.token(Role.auditor)
        first = await read_stream(server, token, lambda seen: len(seen.events) == 9, {"from": "earliest"})
        await publish(settings, events[15:])
        ends = await end_offsets(settings)
        rest = await read_stream(server, token, lambda seen: caught_up(settings, ends)(seen) and seen.pings >= 2,
                                 last_event_id=first.last_id)  # fmt: skip
    assert len(first.ids) + len(rest.ids) == len(events)
    assert set(first.ids + rest.ids) == {p.envelope.id for p in events}
    assert rest.pings >= 2, "an idle stream sends `: ping` heartbeats"


async def test_a_server_restart_loses_and_repeats_nothing(settings: Settings) -> None:
    events = scenario()
    port = free_port()
    received: list[dict[str, Any]] = []
    async with serving(settings, port=port) as server:
        follower = Follower(server.stream_url, server.token(Role.dispatcher), {"from": "earliest"}, len(events),
                            received.append)  # fmt: skip
        client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None))
        following = asyncio.create_task(follower.run(client))
        await publish(settings, events[:10])
        await wait_until(_at_least(received, 10), what="the first events before the restart")
    await publish(settings, events[10:20])  # while no server runs
    async with serving(settings, port=port):
        await publish(settings, events[20:])
        await asyncio.wait_for(following, timeout=DEADLINE)
    await client.aclose()
    assert follower.reconnects >= 1, "the restart must have cut the connection"
    assert follower.duplicates == 0, "the resumed stream repeated events"
    assert sorted(e["id"] for e in received) == sorted(p.envelope.id for p in events)


def _at_least(items: list[dict[str, Any]], count: int) -> Callable[[], Any]:
    async def probe() -> bool:
        return len(items) >= count

    return probe


async def test_a_slow_client_is_cut_off_with_overflow_and_resumes_without_loss(settings: Settings) -> None:
    tight = TEST_STREAM.model_copy(update={"buffer_size": 5, "overflow_grace_seconds": 0.2})
    bulky = [event(pledged(n, "wh-1", None).model_copy(update={"purpose": "x" * 2000}), f"bulk-{n}")
             for n in range(1, 301)]  # fmt: skip
    await publish(settings, bulky)
    ends = await end_offsets(settings)
    small_window = httpx.AsyncHTTPTransport(socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
    async with serving(settings, config=tight, send_buffer=8192) as server:
        stats = stream_stats(server.app.state)
        token = server.token(Role.operator)
        headers = {"Authorization": f"Bearer {token}"}
        async with (
            httpx.AsyncClient(transport=small_window, timeout=httpx.Timeout(10.0, read=None)) as http,
            http.stream("GET", server.stream_url, params={"from": "earliest"}, headers=headers) as response,
        ):
            await wait_until(lambda: _overflowed(stats), what="the server to give up on the stalled client")
            slow = Collected()
            async for message in iter_messages(response.aiter_lines()):
                slow.last_id = message.id or slow.last_id
                slow.kinds.append(message.event)
                if message.event == "message" and message.data:
                    slow.events.append(json.loads(message.data))
        assert slow.kinds[-1] == "overflow", "the stream ends with the overflow message"
        assert 0 < len(slow.events) < len(bulky)
        assert stats.peak_buffered <= tight.buffer_size, "the per-client buffer never grew past its bound"
        rest = Collected(last_id=slow.last_id)
        for _ in range(20):  # a resumed stream may overflow again on a loaded machine: each resume is exact
            await read_stream(server, token, caught_up(settings, ends), last_event_id=rest.last_id, into=rest)
            if caught_up(settings, ends)(rest):
                break
    assert sorted(slow.ids + rest.ids) == sorted(p.envelope.id for p in bulky), "nothing lost, nothing repeated"


async def _overflowed(stats: Any) -> bool:
    return bool(stats.overflows)


async def test_authentication_and_scope_are_enforced(settings: Settings) -> None:
    async with serving(settings) as server, httpx.AsyncClient(timeout=10.0) as http:
        url = server.stream_url
        assert (await http.get(url)).status_code == 401
        assert (await http.get(url, params={"access_token": "not-a-token"})).status_code == 401
        donor = server.token(Role.donor, donor_id="d-1")
        assert (await http.get(url, params={"access_token": donor})).status_code == 403
        staff = server.token(Role.recipient_staff, recipient_id="r-1")
        other = await http.get(url, params={"access_token": staff, "recipient_id": "r-2"})
        assert other.status_code == 403, "recipient staff may not ask for another recipient's events"
        unscoped = server.token(Role.recipient_staff)
        assert (await http.get(url, params={"access_token": unscoped})).status_code == 403
        bad_id = await http.get(url, headers={"Authorization": f"Bearer {staff}", "Last-Event-ID": "v9;x"})
        assert bad_id.status_code == 400 and "Last-Event-ID" in bad_id.json()["error"]["message"]
        via_query = await read_stream(server, "", after_ready, {"access_token": staff})
        assert via_query.kinds == ["ready"], "EventSource clients authenticate with ?access_token="
