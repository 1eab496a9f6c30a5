"""Scope, with real data on the real broker: a role admitted to a route still acts only on its own part of the world.

Donors see and change only their own donor record, pledges and batches; operators act only at their own sites;
recipient staff look at incoming goods only for their own recipient. (Recipient staff registering needs and
confirming receipts for another recipient, operators receiving and dispatchers shipping at another site are
covered next to those services, in tests/integration.) Every refusal is checked to have written nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer

from shared.store.schema import events
from shared.web.auth import Role
from tests.fixtures.databases import sqlite_url
from tests.harness import ServiceHandle, running_service, service_settings, wait_until
from tests.integration.recipient.support import HUANGGANG, JINYINTAN, Batch, BatchSeeder, seed

pytestmark = pytest.mark.kafka

LINE = {"item": "n95-mask", "quantity": 1000, "unit": "piece", "standard": "N95", "warehouse_id": "wh-wuhan-1"}


async def start(service: str, tmp_path: Path, topic_prefix: str, kafka_bootstrap: str) -> Any:
    settings = service_settings(service, sqlite_url(tmp_path, f"{service}.db"), topic_prefix, kafka_bootstrap)
    return running_service(service, settings)


@pytest.fixture
async def pledge(tmp_path: Path, topic_prefix: str, kafka_bootstrap: str) -> AsyncIterator[ServiceHandle]:
    async with await start("pledge", tmp_path, topic_prefix, kafka_bootstrap) as handle:
        yield handle


@pytest.fixture
async def seeder(kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[BatchSeeder]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        yield BatchSeeder(producer, f"{topic_prefix}.batch-events")
    finally:
        await producer.stop()


def donor(service: ServiceHandle, donor_id: str | None) -> dict[str, str]:
    return service.auth(Role.donor, subject=f"{donor_id}-staff", donor_id=donor_id)


async def event_count(service: ServiceHandle) -> int:
    async with service.runtime.database.read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(events))).scalar() or 0)


def refused(response: httpx.Response, status: int = 403) -> str:
    assert response.status_code == status, response.text
    message: str = response.json()["error"]["message"]
    return message


def ids(response: httpx.Response, key: str) -> list[str]:
    assert response.status_code == 200, response.text
    return [item[key] for item in response.json()["items"]]


async def two_donors_with_a_pledge_each(pledge: ServiceHandle) -> None:
    """donor-a pledged pa (batch pa-1), donor-b pledged pb (batch pb-1); both batches in the pledge service's view."""
    for donor_id, pledge_id in (("donor-a", "pa"), ("donor-b", "pb")):
        body = {"donor_id": donor_id, "name": f"Donor {donor_id}"}
        assert (await pledge.post("/donors", json=body)).status_code == 201
        created = await pledge.post("/pledges", json={"pledge_id": pledge_id, "donor_id": donor_id, "lines": [LINE]})
        assert created.status_code == 201, created.text

    async def both_batches_known() -> bool:
        return sorted(ids(await pledge.get("/batches"), "batch_id")) == ["pa-1", "pb-1"]

    await wait_until(both_batches_known, what="both pledges' batches in the pledge service's batch view")


# --- donors --------------------------------------------------------------------------------------------------


async def test_a_donor_reads_only_their_own_record_pledges_and_batches(pledge: ServiceHandle) -> None:
    await two_donors_with_a_pledge_each(pledge)
    b = donor(pledge, "donor-b")
    assert "may not act for donor 'donor-a'" in refused(await pledge.get("/pledges/pa", headers=b))
    assert (await pledge.get("/pledges/pb", headers=b)).status_code == 200
    assert ids(await pledge.get("/pledges", headers=b), "pledge_id") == ["pb"]
    refused(await pledge.get("/pledges", params={"donor_id": "donor-a"}, headers=b))
    assert ids(await pledge.get("/donors", headers=b), "donor_id") == ["donor-b"]
    refused(await pledge.get("/donors/donor-a", headers=b))
    refused(await pledge.get("/donors/donor-a/batches", headers=b))
    assert ids(await pledge.get("/donors/donor-b/batches", headers=b), "batch_id") == ["pb-1"]


async def test_a_donor_sees_only_their_own_batches_in_the_batch_views(pledge: ServiceHandle) -> None:
    await two_donors_with_a_pledge_each(pledge)
    b = donor(pledge, "donor-b")
    assert ids(await pledge.get("/batches", headers=b), "batch_id") == ["pb-1"]
    refused(await pledge.get("/batches", params={"donor_id": "donor-a"}, headers=b))
    refused(await pledge.get("/batches/pa-1", headers=b))
    refused(await pledge.get("/batches/pa-1/events", headers=b))
    assert "is not a batch" in refused(await pledge.get("/batches/pa/events", headers=b)), "a pledge stream"
    assert (await pledge.get("/batches/pb-1", headers=b)).status_code == 200
    assert (await pledge.get("/batches/pb-1/events", headers=b)).status_code == 200
    for role in (Role.operator, Role.auditor):
        assert ids(await pledge.get("/pledges", role=role), "pledge_id") == ["pa", "pb"], "staff see every pledge"
        assert ids(await pledge.get("/batches", role=role), "batch_id") == ["pa-1", "pb-1"]


async def test_a_donor_token_that_names_no_donor_sees_nothing(pledge: ServiceHandle) -> None:
    await two_donors_with_a_pledge_each(pledge)
    anonymous_donor = donor(pledge, None)
    for path in ("/pledges", "/donors", "/batches", "/pledges/pa", "/batches/pa-1"):
        assert "donor" in refused(await pledge.get(path, headers=anonymous_donor)), path


async def test_a_donor_changes_only_their_own_pledges_and_a_refusal_writes_nothing(pledge: ServiceHandle) -> None:
    await two_donors_with_a_pledge_each(pledge)
    b = donor(pledge, "donor-b")
    before = await event_count(pledge)
    refused(await pledge.request("PATCH", "/pledges/pa/lines/1", json={"quantity": 1, "reason": "x"}, headers=b))
    refused(await pledge.post("/pledges/pa/cancel", json={"reason": "not mine"}, headers=b))
    refused(await pledge.post("/pledges", json={"donor_id": "donor-a", "lines": [LINE]}, headers=b))
    refused(await pledge.post("/donors", json={"donor_id": "donor-c", "name": "Someone else"}, headers=b))
    assert await event_count(pledge) == before
    assert (await pledge.post("/pledges/pb/cancel", json={"reason": "changed plans"}, headers=b)).status_code == 200


# --- operators -----------------------------------------------------------------------------------------------


async def test_an_operator_acts_only_at_their_own_sites(
    tmp_path: Path, topic_prefix: str, kafka_bootstrap: str, seeder: BatchSeeder
) -> None:
    batch = Batch("scoped-1", "jinyintan-hospital", "jinyintan-receiving", "need-1", 500)
    async with await start("warehouse", tmp_path, topic_prefix, kafka_bootstrap) as warehouse:
        await seed(warehouse, seeder, batch, until="received")  # received at wh-wuhan-1
        elsewhere = warehouse.auth(Role.operator, subject="op-hub", sites=["hub-xiantao"])
        inspection = {"inspector": "qc", "standard_checked": "N95", "accepted": 500, "rejected": 0, "quarantined": 0}
        before = await event_count(warehouse)
        commands: list[tuple[str, dict[str, Any]]] = [
            ("/batches/scoped-1/inspect", inspection),
            ("/batches/scoped-1/write-off", {"quantity": 1, "reason": "lost", "note": "not here"}),
            ("/batches/scoped-1/allocate", {"need_id": "need-1", "quantity": 1}),
            ("/allocations/run", {"site_id": "wh-wuhan-1"}),
        ]
        for path, body in commands:
            assert "may not act on site 'wh-wuhan-1'" in refused(
                await warehouse.post(path, json=body, headers=elsewhere)
            )
        assert await event_count(warehouse) == before
        own = warehouse.auth(Role.operator, subject="op-wuhan", sites=["wh-wuhan-1"])
        assert (await warehouse.post("/batches/scoped-1/inspect", json=inspection, headers=own)).status_code == 200


# --- recipient staff -----------------------------------------------------------------------------------------


async def test_recipient_staff_see_incoming_goods_only_for_their_own_recipient(
    tmp_path: Path, topic_prefix: str, kafka_bootstrap: str
) -> None:
    async with await start("recipient", tmp_path, topic_prefix, kafka_bootstrap) as recipient:
        for body in (JINYINTAN, HUANGGANG):
            assert (await recipient.post("/recipients", json=body)).status_code == 201
        staff = recipient.auth(Role.recipient_staff, subject="nurse", recipient_id="huanggang-health-committee")
        incoming = "/recipients/jinyintan-hospital/incoming"
        assert "may not act for recipient" in refused(await recipient.get(incoming, headers=staff))
        assert (
            await recipient.get("/recipients/huanggang-health-committee/incoming", headers=staff)
        ).status_code == 200
        refused(await recipient.get(incoming, headers=recipient.auth(Role.donor, donor_id="xiaomi")))
        for role in (Role.operator, Role.dispatcher, Role.auditor):
            assert (await recipient.get(incoming, role=role)).status_code == 200
