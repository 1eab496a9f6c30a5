"""The warehouse service in-process, against the real broker, on SQLite and on PostgreSQL.

Pledged batches, recipients and needs are produced straight onto the test's topics as real CloudEvents, which is
how the warehouse learns them in production, without depending on the pledge and recipient services.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from shared.events import batch_events as ev
from shared.events import reference_events as ref
from shared.events.envelope import Envelope, encode_data, new_event_id, to_headers
from shared.events.registry import BATCH_EVENT_TYPES, payload_data
from shared.messaging.kafka_config import connection_options
from shared.messaging.topics import ensure_topics
from shared.settings import Settings
from shared.store.schema import events
from shared.web.auth import Role
from tests.harness import ServiceHandle, running_service, service_settings, wait_until

WAREHOUSE = "wh-wuhan-1"
PAST_EXPIRY = "2020-03-01"
FUTURE_EXPIRY = "2099-12-31"


# --- seeding the topics --------------------------------------------------------------------------------------


def event(payload: ev.Payload, subject: str, actor: str = "donor:xiaomi") -> Envelope:
    return Envelope(
        type=payload.event_type,
        source="pledge" if payload.event_type in BATCH_EVENT_TYPES else "recipient",
        subject=subject,
        data=payload_data(payload),
        actor=actor,
        correlation_id=new_event_id(),
    )


def pledged(
    batch_id: str,
    quantity: int,
    *,
    item: str = "n95-mask",
    standard: str | None = "N95",
    designated: str | None = None,
    warehouse: str = WAREHOUSE,
) -> Envelope:
    payload = ev.BatchPledged(
        pledge_id=batch_id.rsplit("-", 1)[0],
        donor_id="xiaomi",
        line_no=1,
        item=item,
        quantity=quantity,
        unit=ev.Unit.PIECE,
        standard=standard,
        warehouse_id=warehouse,
        designated_recipient_id=designated,
    )
    return event(payload, batch_id)


def recipient(recipient_id: str, *, frontline: bool) -> Envelope:
    kind = ref.RecipientKind.HOSPITAL if frontline else ref.RecipientKind.HEALTH_COMMITTEE
    payload = ref.RecipientRegistered(
        recipient_id=recipient_id,
        name=recipient_id.title(),
        kind=kind,
        frontline=frontline,
        site_id=f"{recipient_id}-dock",
    )
    return event(payload, recipient_id, "admin:setup")


def need(need_id: str, recipient_id: str, quantity: int, deadline: str | None, item: str = "n95-mask") -> Envelope:
    payload = ref.NeedRegistered.model_validate(
        {
            "need_id": need_id,
            "recipient_id": recipient_id,
            "item": item,
            "quantity": quantity,
            "priority": "critical",
            "deadline": deadline,
        }
    )
    return event(payload, need_id, f"recipient_staff:{recipient_id}")


async def publish(settings: Settings, envelopes: list[Envelope]) -> None:
    producer = AIOKafkaProducer(**connection_options(settings), enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for envelope in envelopes:
            topic = settings.batch_topic if envelope.type in BATCH_EVENT_TYPES else settings.reference_topic
            await producer.send_and_wait(
                topic, encode_data(envelope), key=envelope.subject.encode(), headers=to_headers(envelope)
            )
    finally:
        await producer.stop()


# --- fixtures and helpers ------------------------------------------------------------------------------------


async def topics_ready(settings: Settings) -> None:
    """Create the test's topics and wait until the broker reports all their partitions.

    A consumer that joins its group while a brand-new topic still has no partition metadata is assigned nothing
    and only notices the partitions at its next metadata refresh, minutes later; creating the topics first
    keeps the service's consumers from ever seeing them half-created.
    """
    await ensure_topics(settings)
    admin = AIOKafkaAdminClient(**connection_options(settings))
    await admin.start()
    try:

        async def described() -> bool:
            wanted = [settings.batch_topic, settings.reference_topic]
            found = await admin.describe_topics(wanted)
            return len(found) == len(wanted) and all(
                t["error_code"] == 0 and len(t["partitions"]) == settings.topic_partitions for t in found
            )

        await wait_until(described, what="the test topics to have all their partitions")
    finally:
        await admin.close()


@pytest.fixture
async def warehouse(database_url: str, topic_prefix: str, kafka_bootstrap: str) -> AsyncIterator[ServiceHandle]:
    settings = service_settings("warehouse", database_url, topic_prefix, kafka_bootstrap)
    await topics_ready(settings)
    async with running_service("warehouse", settings) as handle:
        yield handle


def operator(handle: ServiceHandle, site: str = WAREHOUSE) -> dict[str, str]:
    return handle.auth(Role.operator, subject=f"op-{site}", sites=[site])


async def command(
    handle: ServiceHandle, path: str, body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Any:
    """POST (as the warehouse's operator unless headers say otherwise); the answer, or its `error` on a refusal."""
    response = await handle.post(path, json=body, headers=operator(handle) if headers is None else headers)
    assert response.status_code == status, response.text
    answer = response.json()
    if status >= 400:
        assert answer["error"]["message"], answer
        return answer["error"]
    return answer


async def read(handle: ServiceHandle, path: str, **params: Any) -> Any:
    response = await handle.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def fields(row: dict[str, Any], *names: str) -> tuple[Any, ...]:
    return tuple(row[name] for name in names)


async def known(handle: ServiceHandle, batch_ids: list[str]) -> None:
    async def all_arrived() -> bool:
        responses = [await handle.get(f"/batches/{batch_id}") for batch_id in batch_ids]
        return all(r.status_code == 200 for r in responses)

    await wait_until(all_arrived, what=f"batches {batch_ids} to reach the warehouse")


async def needs_known(handle: ServiceHandle, count: int) -> None:
    async def arrived() -> bool:
        page = (await handle.get("/needs")).json()
        return page["total"] == count and all(n["recipient_name"] for n in page["items"])

    await wait_until(arrived, what=f"{count} needs and their recipients to reach the warehouse")


async def receive_and_inspect(
    handle: ServiceHandle, batch_id: str, quantity: int, *, expiry: str = FUTURE_EXPIRY, quarantined: int = 0
) -> None:
    site = (await read(handle, f"/batches/{batch_id}"))["state"]["warehouse_id"]
    receipt = {"site_id": site, "quantity_received": quantity, "lot": f"L-{batch_id}", "expiry": expiry}
    await command(handle, f"/batches/{batch_id}/receive", receipt, headers=operator(handle, site))
    counts = {"accepted": quantity - quarantined, "rejected": 0, "quarantined": quarantined}
    inspection = {"inspector": "qc-li", "standard_checked": "N95", **counts}
    await command(handle, f"/batches/{batch_id}/inspect", inspection, headers=operator(handle, site))


async def stock_line(handle: ServiceHandle, lot: str) -> dict[str, Any]:
    [line] = [row for row in (await read(handle, "/stock", site_id=WAREHOUSE))["items"] if row["lot"] == lot]
    found: dict[str, Any] = line
    return found


async def stored_events(handle: ServiceHandle, batch_id: str) -> list[str]:
    """The short names (`received`, ...) of the events in the warehouse's own copy of a stream."""
    async with handle.runtime.database.read() as conn:
        query = sa.select(events.c.event_type).where(events.c.stream_id == batch_id).order_by(events.c.version)
        return [row.event_type.split(".")[-2] for row in await conn.execute(query)]


# --- intake, inspection, quarantine, stock, write-off ---------------------------------------------------------


async def test_intake_inspection_quarantine_stock_and_write_off(warehouse: ServiceHandle) -> None:
    await publish(warehouse.settings, [pledged("xiaomi-1-1", 1000), pledged("xiaomi-1-2", 500)])
    await known(warehouse, ["xiaomi-1-1", "xiaomi-1-2"])
    expected = (await read(warehouse, f"/sites/{WAREHOUSE}/expected-intake"))["items"]
    assert [fields(b, "batch_id", "quantity_pledged") for b in expected] == [("xiaomi-1-1", 1000), ("xiaomi-1-2", 500)]

    receipt = {"site_id": WAREHOUSE, "quantity_received": 980, "shortfall": 20, "shortfall_reason": "torn carton"}
    receipt |= {"lot": "XM-1", "expiry": FUTURE_EXPIRY, "condition": "damaged_packaging"}
    received = await command(warehouse, "/batches/xiaomi-1-1/receive", receipt)
    assert (received["status"], received["state"]["shortfall"]) == ("received", 20)
    assert (await stock_line(warehouse, "XM-1"))["awaiting_inspection"] == 980
    again = await command(warehouse, "/batches/xiaomi-1-1/receive", receipt, 409)
    assert again["current_state"] == "received" and "inspected" in again["allowed"]

    inspection = {"inspector": "qc-li", "standard_checked": "KN95", "accepted": 900, "rejected": 30, "quarantined": 50}
    wrong = await command(warehouse, "/batches/xiaomi-1-1/inspect", inspection, 422)
    assert "declared standard 'N95'" in wrong["message"]
    assert fields(wrong, "current_state", "allowed") == ("received", ["inspected", "redesignated"])
    inspection["standard_checked"] = "N95"
    sums = await command(warehouse, "/batches/xiaomi-1-1/inspect", {**inspection, "accepted": 901}, 422)
    assert "= 981, but 980 were received" in sums["message"]
    inspected = await command(warehouse, "/batches/xiaomi-1-1/inspect", inspection)
    assert inspected["status"] == "in_stock"
    assert fields(inspected["state"], "accepted", "rejected", "quarantined", "on_hand") == (900, 30, 50, 900)
    line = await stock_line(warehouse, "XM-1")
    assert fields(line, "on_hand", "reserved", "free", "quarantined", "batches") == (900, 0, 900, 50, 1)

    resolution = {"inspector": "qc-li", "released": 40, "rejected": 10, "notes": "certificates arrived"}
    resolved = await command(warehouse, "/batches/xiaomi-1-1/quarantine/resolve", resolution)
    assert fields(resolved["state"], "on_hand", "rejected", "quarantined") == (940, 40, 0)

    write_off = {"quantity": 15, "reason": "damaged", "note": "water damage"}
    written = await command(warehouse, "/batches/xiaomi-1-1/write-off", write_off)
    assert fields(written["state"], "on_hand", "written_off_stock") == (925, 15)
    too_much = await command(warehouse, "/batches/xiaomi-1-1/write-off", {**write_off, "quantity": 926}, 422)
    assert "only 925 free" in too_much["message"] and too_much["current_state"] == "in_stock"

    assert fields(await stock_line(warehouse, "XM-1"), "on_hand", "free", "quarantined") == (925, 925, 0)
    expected = (await read(warehouse, f"/sites/{WAREHOUSE}/expected-intake"))["items"]
    assert [b["batch_id"] for b in expected] == ["xiaomi-1-2"]
    assert await stored_events(warehouse, "xiaomi-1-1") == [
        "pledged",
        "received",
        "inspected",
        "quarantine-resolved",
        "written-off",
    ]
    history = await read(warehouse, "/batches/xiaomi-1-1/events")
    assert {e["actor"] for e in history[1:]} == {f"operator:op-{WAREHOUSE}"}


# --- allocation priority and the designation lock -------------------------------------------------------------


async def test_allocation_priority_and_designation_lock(warehouse: ServiceHandle) -> None:
    await publish(
        warehouse.settings,
        [
            pledged("open-1", 200),
            pledged("locked-1", 100, designated="union-hospital"),
            pledged("expired-1", 10),
            pledged("kits-1", 50, item="test-kit", standard=None),
            recipient("jinyintan", frontline=True),
            recipient("tongji", frontline=True),
            recipient("xiaogan", frontline=False),
            need("need-xiaogan", "xiaogan", 300, "2020-01-27T00:00:00Z"),
            need("need-jinyintan", "jinyintan", 150, "2099-02-10T00:00:00Z"),
            need("need-tongji", "tongji", 100, None),
        ],
    )
    await known(warehouse, ["open-1", "locked-1", "expired-1", "kits-1"])
    await needs_known(warehouse, 3)
    await receive_and_inspect(warehouse, "open-1", 200)
    await receive_and_inspect(warehouse, "locked-1", 100)
    await receive_and_inspect(warehouse, "expired-1", 10, expiry=PAST_EXPIRY)
    await receive_and_inspect(warehouse, "kits-1", 50, quarantined=5)

    run = await command(warehouse, "/allocations/run", {"site_id": WAREHOUSE})
    made = [fields(a, "batch_id", "need_id", "quantity", "priority_rank") for a in run["allocations"]]
    assert made == [("open-1", "need-jinyintan", 150, 1), ("open-1", "need-tongji", 50, 2)]
    why = {(u["batch_id"], u["reason"]): u for u in run["not_allocated"]}
    locked_out, expired = ("locked-1", "designated_recipient_has_no_need"), ("expired-1", "expired")
    assert set(why) == {locked_out, expired, ("kits-1", "quarantined"), ("kits-1", "no_open_need")}
    assert why[locked_out]["message"].startswith("designated to union-hospital, which has no open need for n95-mask")
    assert f"expired on {PAST_EXPIRY}" in why[expired]["message"]
    assert why[("kits-1", "no_open_need")]["quantity"] == 45

    locked = await command(warehouse, "/batches/locked-1/allocate", {"need_id": "need-xiaogan", "quantity": 100}, 422)
    assert "designation lock" in locked["message"]
    assert locked["current_state"] == "in_stock" and "allocated" in locked["allowed"]

    change = {"to_recipient_id": "xiaogan", "approved_by": "wuhan-charity-federation", "reason": "union has no need"}
    await command(warehouse, "/batches/locked-1/redesignate", change, 403)
    admin = warehouse.auth(Role.admin)
    typo = await command(
        warehouse, "/batches/locked-1/redesignate", {**change, "to_recipient_id": "xiaogn"}, 422, admin
    )
    assert "recipient xiaogn is not known to the warehouse" in typo["message"]
    redesignated = await command(warehouse, "/batches/locked-1/redesignate", change, headers=admin)
    assert redesignated["state"]["designated_recipient_id"] == "xiaogan"

    second = await command(warehouse, "/allocations/run", {})
    assert [fields(a, "batch_id", "need_id", "quantity") for a in second["allocations"]] == [
        ("locked-1", "need-xiaogan", 100)
    ]
    needs = (await read(warehouse, "/needs"))["items"]
    assert [fields(n, "need_id", "allocated", "remaining", "frontline") for n in needs] == [
        ("need-jinyintan", 150, 0, True),
        ("need-tongji", 50, 50, True),
        ("need-xiaogan", 100, 200, False),
    ]
    allocations = (await read(warehouse, "/allocations", recipient_id="tongji", status="open"))["items"]
    assert [fields(a, "batch_id", "quantity") for a in allocations] == [("open-1", 50)]
    assert fields(await stock_line(warehouse, "L-open-1"), "on_hand", "reserved", "free") == (200, 200, 0)


async def test_concurrent_runs_at_two_sites_never_allocate_more_than_a_need_lacks(warehouse: ServiceHandle) -> None:
    recipients_and_needs = [recipient("jinyintan", frontline=True), need("need-1", "jinyintan", 120, None)]
    await publish(
        warehouse.settings,
        [pledged("race-1", 100), pledged("race-2", 100, warehouse="wh-wuhan-2"), *recipients_and_needs],
    )
    await known(warehouse, ["race-1", "race-2"])
    await needs_known(warehouse, 1)
    await receive_and_inspect(warehouse, "race-1", 100)
    await receive_and_inspect(warehouse, "race-2", 100)

    sites = (WAREHOUSE, "wh-wuhan-2")
    runs = await asyncio.gather(*(warehouse.post("/allocations/run", json={"site_id": site}) for site in sites))
    assert [run.status_code for run in runs] == [200, 200]
    assert sorted(a["quantity"] for run in runs for a in run.json()["allocations"]) == [20, 100]
    [need_row] = (await read(warehouse, "/needs"))["items"]
    assert fields(need_row, "allocated", "remaining") == (120, 0)


# --- picking and splitting ------------------------------------------------------------------------------------


async def test_partial_pick_splits_a_child_and_whole_pick_picks_the_batch(warehouse: ServiceHandle) -> None:
    need_and_recipient = [recipient("tongji", frontline=True), need("need-1", "tongji", 1000, None)]
    await publish(warehouse.settings, [pledged("split-1", 100), *need_and_recipient])
    await known(warehouse, ["split-1"])
    await needs_known(warehouse, 1)
    await receive_and_inspect(warehouse, "split-1", 100)
    first = await command(warehouse, "/batches/split-1/allocate", {"need_id": "need-1", "quantity": 30})
    second = await command(warehouse, "/batches/split-1/allocate", {"need_id": "need-1", "quantity": 70})
    assert second["status"] == "allocated"
    first_id, second_id = (result["state"]["allocations"][-1]["allocation_id"] for result in (first, second))

    partial = await command(warehouse, f"/allocations/{first_id}/pick", {"picker": "zhang"})
    assert fields(partial, "split", "picked_batch_id") == (True, "split-1.1")
    child, parent = partial["child"]["state"], partial["parent"]["state"]
    assert fields(child, "parent_batch_id", "root_batch_id", "status") == ("split-1", "split-1", "picked")
    assert fields(child, "lot", "expiry", "item") == ("L-split-1", FUTURE_EXPIRY, "n95-mask")
    assert child["on_hand"] + parent["on_hand"] == 100
    assert fields(parent, "children", "split_out") == ([["split-1.1", 30]], 30)
    child_events = await read(warehouse, "/batches/split-1.1/events")
    assert [e["type"].split(".")[-2] for e in child_events] == ["split-created", "picked"]
    assert child_events[0]["data"]["parent_batch_id"] == "split-1"
    assert child_events[1]["causation_id"] == partial["parent"]["event_ids"][0]

    whole = await command(warehouse, f"/allocations/{second_id}/pick", {"picker": "zhang"})
    assert (whole["split"], whole["picked_batch_id"], whole["parent"]["status"]) == (False, "split-1", "picked")
    assert whole["parent"]["state"]["on_hand"] == 70
    again = await command(warehouse, f"/allocations/{second_id}/pick", {"picker": "zhang"}, 409)
    assert fields(again, "current_state", "allowed") == ("picked", ["dispatched", "written-off"])

    picked = (await read(warehouse, "/allocations", status="picked"))["items"]
    assert sorted(fields(a, "batch_id", "quantity") for a in picked) == [("split-1", 70), ("split-1.1", 30)]
    line = await stock_line(warehouse, "L-split-1")
    assert fields(line, "on_hand", "reserved", "free", "batches") == (100, 100, 0, 2)
    assert await stored_events(warehouse, "split-1") == [
        "pledged",
        "received",
        "inspected",
        "allocated",
        "allocated",
        "split",
        "picked",
    ]


# --- idempotency and access -----------------------------------------------------------------------------------


async def test_idempotent_replay_and_site_scope(warehouse: ServiceHandle) -> None:
    await publish(warehouse.settings, [pledged("idem-1", 100)])
    await known(warehouse, ["idem-1"])
    receipt = {"site_id": WAREHOUSE, "quantity_received": 100, "lot": "L1"}
    other_site = await command(warehouse, "/batches/idem-1/receive", receipt, 403, operator(warehouse, "wh-xiantao"))
    assert "may not act on site 'wh-wuhan-1'" in other_site["message"]
    await command(warehouse, "/batches/idem-1/receive", receipt, 403, warehouse.auth(Role.auditor, subject="audit"))

    keyed = {**operator(warehouse), "Idempotency-Key": "receive-idem-1"}
    first = await warehouse.post("/batches/idem-1/receive", json=receipt, headers=keyed)
    replay = await warehouse.post("/batches/idem-1/receive", json=receipt, headers=keyed)
    assert first.status_code == replay.status_code == 200
    assert replay.json() == first.json() and replay.headers.get("Idempotent-Replay") == "true"
    assert await stored_events(warehouse, "idem-1") == ["pledged", "received"]
    changed = await command(warehouse, "/batches/idem-1/receive", {**receipt, "lot": "L2"}, 422, keyed)
    assert "already used for a different request" in changed["message"]
    assert await stored_events(warehouse, "idem-1") == ["pledged", "received"]

    hub = {
        "site_id": "hub-xiantao",
        "name": "Xiantao relay hub",
        "kind": "relay_hub",
        "city": "Xiantao",
        "country": "CN",
    }
    await command(warehouse, "/sites", hub, 403)
    admin_keyed = {**warehouse.auth(Role.admin), "Idempotency-Key": "site-1"}
    created = await command(warehouse, "/sites", hub, 201, admin_keyed)
    assert await command(warehouse, "/sites", hub, 201, admin_keyed) == created
    await command(warehouse, "/sites", hub, 409, warehouse.auth(Role.admin))
    hubs = await warehouse.get("/sites", params={"kind": "relay_hub"}, role=Role.auditor)
    assert [s["site_id"] for s in hubs.json()["items"]] == ["hub-xiantao"]
    assert await stored_events(warehouse, "hub-xiantao") == ["registered"]

    unknown = await command(warehouse, "/batches/nope-1/receive", receipt, 404)
    assert "not known to the warehouse (yet)" in unknown["message"]
    bad = await command(warehouse, "/batches/idem-1/write-off", {"quantity": 0, "reason": "stolen", "note": "x"}, 422)
    assert "quantity" in bad["message"] and "reason" in bad["message"]
