"""`aidtrail deadletter` end to end: a real warehouse process parks a broken event and the one behind it; the
command shows them, fixes the first, replays the stream (both applied, in order) and the stream flows again.
Discarding needs a reason, which is kept; auditors may look but not change anything."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from typer.testing import CliRunner

from shared.cli.deadletter_commands import EXIT_ERROR, EXIT_OK, EXIT_STILL_PARKED, deadletter_app
from shared.devstack.processes import Stack
from shared.events import batch_events as ev
from shared.events.envelope import Envelope, encode_data, to_headers
from shared.events.registry import payload_data
from shared.settings import Settings
from shared.store.database import Database
from shared.store.schema import dead_letter_actions
from tests.harness import wait_until, warehouse_process
from tests.unit import lifecycle_builders as b

DEADLINE_SECONDS = 90.0


class Tool:
    """The command as an operator runs it, against one service URL, with an admin or auditor token."""

    def __init__(self, url: str, settings: Settings):
        self.url = url
        self.settings = settings
        self.runner = CliRunner()

    def token(self, role: str) -> str:
        from shared.web.auth import mint_token

        return mint_token(f"{role}.on.call", role, settings=self.settings)

    async def run(self, *args: str, role: str = "admin") -> tuple[int, str]:
        argv = [*args, "--url", self.url, "--token", self.token(role)]
        result = await asyncio.to_thread(self.runner.invoke, deadletter_app, argv)
        return result.exit_code, result.output

    async def json(self, *args: str, role: str = "admin") -> Any:
        code, output = await self.run(*args, "--json", role=role)
        assert code == EXIT_OK, output
        return json.loads(output)


@pytest.fixture
async def warehouse(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, database_url: str
) -> AsyncIterator[tuple[Stack, Settings]]:
    async with warehouse_process(kafka_bootstrap, topic_prefix, tmp_path, database_url) as running:
        yield running


def event(stream_id: str, payload: ev.Payload | None = None, **data_changes: Any) -> Envelope:
    payload = payload or b.pledged()
    data = {**payload_data(payload), **data_changes}
    if isinstance(payload, ev.BatchPledged):
        data["pledge_id"] = f"pledge-{stream_id}"
    return Envelope(
        type=payload.event_type,
        source="pledge",
        subject=stream_id,
        data=data,
        actor="donor:xiaomi",
        correlation_id=stream_id,
    )


async def produce(settings: Settings, *envelopes: Envelope, headers: list[tuple[str, bytes]] | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for envelope in envelopes:
            record_headers = headers if headers is not None else to_headers(envelope)
            await producer.send_and_wait(
                settings.batch_topic, value=encode_data(envelope), key=envelope.subject.encode(), headers=record_headers
            )
    finally:
        await producer.stop()


async def batch_events(http: httpx.AsyncClient, tool: Tool, batch_id: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {tool.token('admin')}"}
    response = await http.get(f"{tool.url}/batches/{batch_id}/events", headers=headers)
    return list(response.json()) if response.status_code == 200 else []


async def wait_for_versions(http: httpx.AsyncClient, tool: Tool, batch_id: str, versions: int) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]] | None:
        found = await batch_events(http, tool, batch_id)
        return found if len(found) >= versions else None

    return await wait_until(probe, what=f"{batch_id} at version {versions}", deadline=DEADLINE_SECONDS)


async def wait_for_parked(tool: Tool, stream_id: str, count: int) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]] | None:
        page = await tool.json("list", "--stream", stream_id)
        return page["items"] if page["total"] == count else None

    return await wait_until(probe, what=f"{count} parked events of {stream_id}", deadline=DEADLINE_SECONDS)


async def test_fix_and_replay_applies_the_parked_events_in_order_and_the_stream_flows_again(
    warehouse: tuple[Stack, Settings],
) -> None:
    stack, settings = warehouse
    tool = Tool(stack.url("warehouse"), settings)
    broken_id, healthy_id = f"dl-{uuid.uuid4().hex[:8]}", f"ok-{uuid.uuid4().hex[:8]}"
    broken = event(broken_id, quantity=-5)
    behind = event(broken_id, b.received())
    await produce(settings, broken, behind, event(healthy_id))

    async with httpx.AsyncClient(timeout=10.0) as http:
        await wait_for_versions(http, tool, healthy_id, 1)
        first, second = await wait_for_parked(tool, broken_id, 2)
        assert (first["event_id"], second["event_id"]) == (broken.id, behind.id), "listed in replay order"
        assert "quantity" in first["reason"] and "behind" in second["reason"]
        shown = await tool.json("show", str(first["id"]), role="auditor")
        assert shown["value_json"]["quantity"] == -5 and shown["event_type"] == ev.BatchPledged.event_type

        code, output = await tool.run("fix", str(first["id"]), "--value", "{}", role="auditor")
        assert code == EXIT_ERROR and "403" in output, "auditors may look, not change"

        still_wrong = {**shown["value_json"], "quantity": 5, "item": ""}
        code, _ = await tool.run("fix", str(first["id"]), "--value", json.dumps(still_wrong), "--note", "try 1")
        assert code == EXIT_OK
        code, output = await tool.run("replay", broken_id)
        assert code == EXIT_STILL_PARKED, output
        first, second = await wait_for_parked(tool, broken_id, 2)
        assert "item" in first["reason"] and "behind" in second["reason"], "still parked, with the new reason"
        assert await batch_events(http, tool, broken_id) == [], "nothing of the stream was applied"

        corrected = {**shown["value_json"], "quantity": 1000}
        code, _ = await tool.run("fix", str(first["id"]), "--value", json.dumps(corrected), "--note", "typo: 1000")
        assert code == EXIT_OK
        history = (await tool.json("show", str(first["id"])))["history"]
        assert [(h["action"], h["note"]) for h in history] == [
            ("fixed", "try 1"),
            ("replay_failed", first["reason"]),
            ("fixed", "typo: 1000"),
        ]
        (result,) = await tool.json("replay", broken_id)
        assert result["applied"] == [first["id"], second["id"]] and result["unparked"]

        applied = await wait_for_versions(http, tool, broken_id, 2)
        assert [(e["version"], e["id"]) for e in applied] == [(1, broken.id), (2, behind.id)]
        assert applied[0]["data"]["quantity"] == 1000

        await produce(settings, event(broken_id, b.inspected()))
        flowing = await wait_for_versions(http, tool, broken_id, 3)
        assert flowing[2]["type"] == ev.BatchInspected.event_type, "the stream flows again"
        assert (await tool.json("list", "--stream", broken_id))["total"] == 0


async def test_discard_needs_a_reason_keeps_it_and_the_events_behind_replay_afterwards(
    warehouse: tuple[Stack, Settings], database_url: str
) -> None:
    stack, settings = warehouse
    tool = Tool(stack.url("warehouse"), settings)
    stream_id = f"dl-{uuid.uuid4().hex[:8]}"
    unknown = event(stream_id)
    headers = [(n, b"org.aidtrail.batch.teleported.v1" if n == "ce_type" else v) for n, v in to_headers(unknown)]
    await produce(settings, unknown, headers=headers)
    await produce(settings, event(stream_id))

    async with httpx.AsyncClient(timeout=10.0) as http:
        poison, behind = await wait_for_parked(tool, stream_id, 2)
        assert "unknown event type" in poison["reason"]
        code, output = await tool.run("discard", str(poison["id"]))
        assert code != EXIT_OK and "--reason" in output, "no discard without a reason"
        code, output = await tool.run("discard", str(poison["id"]), "--reason", "test record from a broken producer")
        assert code == EXIT_OK and "1 event(s)" in output
        code, _ = await tool.run("show", str(poison["id"]))
        assert code == EXIT_ERROR, "a discarded event is no longer parked"
        (result,) = await tool.json("replay", stream_id)
        assert result["applied"] == [behind["id"]] and result["unparked"]
        assert len(await wait_for_versions(http, tool, stream_id, 1)) == 1

    database = Database.connect(database_url)
    try:
        async with database.read() as conn:
            query = sa.select(dead_letter_actions).where(dead_letter_actions.c.parked_id == poison["id"])
            (action,) = (await conn.execute(query)).mappings().all()
    finally:
        await database.dispose()
    assert action["action"] == "discarded" and action["actor"] == "admin:admin.on.call"
    assert action["note"] == "test record from a broken producer"
    assert json.loads(action["record"])["headers"][2] == ["ce_type", "org.aidtrail.batch.teleported.v1"]
