"""From a donor's pledge to the warehouse's intake, across two services, the real broker and two databases.

The pledge service and the warehouse service each run in-process on their own database (both SQLite or both
PostgreSQL) and share only the test's Kafka topics, as in production.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer

from shared.events import batch_events as ev
from shared.events.envelope import Envelope, encode_data, new_event_id, to_headers
from shared.events.registry import payload_data
from shared.messaging.consumer import ProjectionConsumer
from shared.messaging.kafka_config import connection_options
from shared.settings import Settings
from shared.store.schema import consumer_positions, events, processed_events
from shared.web.auth import Role
from tests.fixtures.databases import fresh_postgres_url, sqlite_url
from tests.harness import ServiceHandle, running_service, service_settings, wait_until
from tests.integration.warehouse.support import topics_ready

WAREHOUSE = "wh-wuhan-1"


# --- fixtures ------------------------------------------------------------------------------------------------


@pytest.fixture
async def pledge_database_url(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """Each service has its own database, on the same backend as the warehouse's."""
    if database_url.startswith("sqlite"):
        yield sqlite_url(tmp_path, "pledge.db")
        return
    async with fresh_postgres_url() as url:
        yield url


@pytest.fixture
async def warehouse_settings(database_url: str, topic_prefix: str, kafka_bootstrap: str) -> Settings:
    settings = service_settings("warehouse", database_url, topic_prefix, kafka_bootstrap)
    await topics_ready(settings)
    return settings


@pytest.fixture
def pledge_settings(pledge_database_url: str, topic_prefix: str, kafka_bootstrap: str) -> Settings:
    return service_settings("pledge", pledge_database_url, topic_prefix, kafka_bootstrap)


# --- helpers -------------------------------------------------------------------------------------------------


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def pledge_lines(pledge: ServiceHandle, pledge_id: str, *quantities: int) -> list[str]:
    """Register the donor (once) and a pledge with one n95 line per quantity; returns the batch ids."""
    donor = await pledge.get("/donors/xiaomi")
    if donor.status_code == 404:
        await ok(await pledge.post("/donors", json={"donor_id": "xiaomi", "name": "Xiaomi Group"}), 201)
    lines = [
        {"item": "n95-mask", "quantity": q, "unit": "piece", "standard": "N95", "warehouse_id": WAREHOUSE}
        for q in quantities
    ]
    created = await ok(
        await pledge.post("/pledges", json={"pledge_id": pledge_id, "donor_id": "xiaomi", "lines": lines}), 201
    )
    batch_ids: list[str] = created["batch_ids"]
    return batch_ids


async def expected_intake(warehouse: ServiceHandle) -> list[str]:
    page = await ok(await warehouse.get(f"/sites/{WAREHOUSE}/expected-intake", role=Role.auditor))
    return [item["batch_id"] for item in page["items"]]


async def wait_expected(warehouse: ServiceHandle, batch_ids: list[str]) -> None:
    async def arrived() -> bool:
        return set(batch_ids) <= set(await expected_intake(warehouse))

    await wait_until(arrived, what=f"{batch_ids} in the warehouse's expected intake")


def consumer(warehouse: ServiceHandle, name: str) -> ProjectionConsumer:
    [found] = [c for c in warehouse.runtime.consumers if c.name.endswith(f".warehouse.{name}")]
    return found


async def stored_offsets(warehouse: ServiceHandle) -> int:
    """The batch consumer's stored next offsets, summed over partitions: records consumed from the batch topic."""
    name = consumer(warehouse, "batches").name
    async with warehouse.runtime.database.read() as conn:
        query = sa.select(sa.func.sum(consumer_positions.c.next_offset)).where(consumer_positions.c.consumer == name)
        return int((await conn.execute(query)).scalar() or 0)


async def stream_types(warehouse: ServiceHandle, stream_id: str) -> list[str]:
    async with warehouse.runtime.database.read() as conn:
        query = sa.select(events.c.event_type).where(events.c.stream_id == stream_id).order_by(events.c.version)
        return [row.event_type.split(".")[-2] for row in await conn.execute(query)]


async def relay_drained(service: ServiceHandle) -> bool:
    relay = service.runtime.relay
    return relay is not None and await relay.backlog() == 0


# --- (1) pledge -> expected intake, (4) refused receipts, (5) receipt on the same stream --------------------


async def test_pledge_reaches_expected_intake_and_receipt_lands_on_the_batch_stream(
    pledge_settings: Settings, warehouse_settings: Settings
) -> None:
    async with (
        running_service("pledge", pledge_settings) as pledge,
        running_service("warehouse", warehouse_settings) as warehouse,
    ):
        [batch_id] = await pledge_lines(pledge, "xiaomi-2020-01", 1000)
        await wait_expected(warehouse, [batch_id])

        receipt = {"site_id": WAREHOUSE, "quantity_received": 1000, "lot": "XM-01", "condition": "good"}
        unknown = await warehouse.post("/batches/xiaomi-2020-99-1/receive", json=receipt)
        assert unknown.status_code == 404
        assert "xiaomi-2020-99-1 is not known to the warehouse (yet)" in unknown.json()["error"]["message"]
        assert "expected-intake" in unknown.json()["error"]["message"]

        short = await warehouse.post(f"/batches/{batch_id}/receive", json={**receipt, "quantity_received": 900})
        assert short.status_code == 422
        error = short.json()["error"]
        assert "received 900 + shortfall 0 must equal the 1000 pledged" in error["message"]
        assert error["current_state"] == "pledged"
        elsewhere = await warehouse.post(f"/batches/{batch_id}/receive", json={**receipt, "site_id": "wh-wuhan-2"})
        assert elsewhere.status_code == 422
        assert f"pledged to warehouse {WAREHOUSE}, not wh-wuhan-2" in elsewhere.json()["error"]["message"]

        await ok(await warehouse.post(f"/batches/{batch_id}/receive", json=receipt))
        history = await ok(await warehouse.get(f"/batches/{batch_id}/events"))
        assert [(e["type"].split(".")[-2], e["source"]) for e in history] == [
            ("pledged", "pledge"),
            ("received", "warehouse"),
        ]
        assert await expected_intake(warehouse) == []

        async def pledge_sees_receipt() -> bool:
            line = (await ok(await pledge.get("/pledges/xiaomi-2020-01")))["lines"][0]
            return bool(line["status"] == "received")

        await wait_until(pledge_sees_receipt, what="the pledge service to see the receipt on the batch stream")
        pledge_history = await ok(await pledge.get(f"/batches/{batch_id}/events"))
        assert [e["id"] for e in pledge_history] == [e["id"] for e in history]


# --- (2) restart resumes from the stored position -------------------------------------------------------------


async def test_warehouse_resumes_from_its_stored_position_after_a_restart(
    pledge_settings: Settings, warehouse_settings: Settings
) -> None:
    async with running_service("pledge", pledge_settings) as pledge:
        async with running_service("warehouse", warehouse_settings) as warehouse:
            first = await pledge_lines(pledge, "xiaomi-2020-01", 1000)
            await wait_expected(warehouse, first)
            assert await stored_offsets(warehouse) == 1

        while_down = await pledge_lines(pledge, "xiaomi-2020-02", 500, 300)
        await wait_until(lambda: relay_drained(pledge), what="the pledges made while the warehouse was down to publish")

        async with running_service("warehouse", warehouse_settings) as restarted:
            await wait_expected(restarted, first + while_down)
            batches = consumer(restarted, "batches")
            # Exactly the two new events were applied. A re-read of the earlier record would be dropped by the
            # dedup table (stats.duplicates), so `applied` is what proves nothing was applied twice.
            assert batches.stats.applied == 2
            assert await stored_offsets(restarted) == 3
            async with restarted.runtime.database.read() as conn:
                event_ids = [row.event_id for row in await conn.execute(sa.select(events.c.event_id))]
                processed = await conn.execute(
                    sa.select(sa.func.count()).where(processed_events.c.consumer == batches.name)
                )
                assert processed.scalar() == 3
            assert len(event_ids) == len(set(event_ids)) == 3
            for batch_id in first + while_down:
                assert await stream_types(restarted, batch_id) == ["pledged"]


# --- (3) the same event delivered twice is applied once -------------------------------------------------------


def batch_event(payload: ev.Payload, batch_id: str) -> Envelope:
    return Envelope(
        type=payload.event_type,
        source="pledge",
        subject=batch_id,
        data=payload_data(payload),
        actor="donor:xiaomi",
        correlation_id=new_event_id(),
    )


async def test_the_same_event_delivered_twice_is_applied_once(warehouse_settings: Settings) -> None:
    batch_id = "dup-2020-01-1"
    pledged = batch_event(
        ev.BatchPledged(
            pledge_id="dup-2020-01",
            donor_id="xiaomi",
            line_no=1,
            item="n95-mask",
            quantity=200,
            unit=ev.Unit.PIECE,
            warehouse_id=WAREHOUSE,
        ),
        batch_id,
    )
    marker = batch_event(ev.PledgeLineAmended(quantity=150, reason="marker after the duplicate"), batch_id)
    async with running_service("warehouse", warehouse_settings) as warehouse:
        producer = AIOKafkaProducer(**connection_options(warehouse_settings), acks="all")
        await producer.start()
        try:
            for envelope in (pledged, pledged, marker):  # same key: one partition, in this order
                await producer.send_and_wait(
                    warehouse_settings.batch_topic,
                    encode_data(envelope),
                    key=batch_id.encode(),
                    headers=to_headers(envelope),
                )
        finally:
            await producer.stop()

        async def marker_applied() -> bool:
            return "amended" in await stream_types(warehouse, batch_id)

        await wait_until(marker_applied, what="the marker event after the duplicate")
        assert await stream_types(warehouse, batch_id) == ["pledged", "amended"]
        batches = consumer(warehouse, "batches")
        # The deliberate duplicate was seen and dropped; the pledged event and the marker were applied once each.
        assert batches.stats.duplicates >= 1
        assert (batches.stats.applied, batches.stats.parked) == (2, 0)
        state = (await ok(await warehouse.get(f"/batches/{batch_id}")))["state"]
        assert (state["quantity_pledged"], state["version"]) == (150, 2)
