"""The SSE stream against the real broker, served by a real HTTP server (uvicorn) mounted in the pledge service.

Events come from a scenario whose expected audience is written down by hand next to each event (its tags), so
the filters are checked against an independent answer, not against themselves. "Nothing missed, nothing
repeated" is checked by reading until the stream's position (its SSE id) covers the end of every partition.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from examples.sse_follower import Follower, iter_messages
from shared.domain.batch_fold import fold
from shared.events.registry import parse_envelope
from shared.settings import Settings
from shared.streaming import stream_stats
from shared.web.auth import Role
from tests.harness import wait_until
from tests.integration.sse_scenario import event, expected_ids, pledged, scenario
from tests.integration.sse_support import (
    DEADLINE,
    TEST_STREAM,
    Collected,
    after_ready,
    caught_up,
    end_offsets,
    free_port,
    publish,
    read_stream,
    serving,
    stream_settings,
)


@pytest.fixture
async def settings(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Settings:
    return await stream_settings(kafka_bootstrap, topic_prefix, tmp_path)


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
