"""The dispatch service in-process against the real broker, on SQLite and on PostgreSQL.

Dispatch learns only from events, so each test seeds the test's own topics with real, valid events (sites,
recipients, and batches from pledged to picked) exactly as the other services would publish them, then drives
shipments through the HTTP API and checks what dispatch wrote, both in its store and on Kafka.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.dispatch.tables import recipients, sites
from shared.events import batch_events as ev
from shared.events import reference_events as ref
from shared.events.envelope import Envelope, encode_data, from_record, to_headers
from shared.events.registry import payload_data
from shared.messaging.consumer import ConsumerStats, ProjectionConsumer
from shared.messaging.positions import forget_consumer
from shared.settings import Settings
from shared.web.auth import Role
from tests.harness import ServiceHandle, running_service, service_settings, wait_until

WAREHOUSE, OTHER_WAREHOUSE, HUB = "wh-wuhan-1", "wh-wuhan-2", "hub-xiantao"
JINYINTAN, TONGJI = "jinyintan-hospital", "tongji-hospital"
JINYINTAN_SITE, TONGJI_SITE = "site-jinyintan", "site-tongji"
VIA_HUB = [
    {"from_site_id": WAREHOUSE, "to_site_id": HUB, "carrier": "SF Express", "vehicle": "E-12345"},
    {"from_site_id": HUB, "to_site_id": JINYINTAN_SITE, "carrier": "JD Logistics", "vehicle": "E-67890"},
]
DIRECT = [{"from_site_id": WAREHOUSE, "to_site_id": JINYINTAN_SITE, "carrier": "SF Express"}]
TO_PICKED = ["pledged", "received", "inspected", "allocated", "picked"]


class Seeder:
    """Publishes what the pledge, warehouse and recipient services would, straight onto the test's topics."""

    def __init__(self, producer: AIOKafkaProducer, settings: Settings):
        self.producer = producer
        self.settings = settings

    async def publish(self, topic: str, subject: str, payload: ev.Payload, source: str) -> None:
        envelope = Envelope(
            type=payload.event_type,
            source=source,
            subject=subject,
            data=payload_data(payload),
            actor=f"operator:seed-{source}",
            correlation_id=uuid.uuid4().hex,
        )
        await self.producer.send_and_wait(
            topic, value=encode_data(envelope), key=subject.encode(), headers=to_headers(envelope)
        )

    async def site(self, site_id: str, kind: ref.SiteKind) -> None:
        payload = ref.SiteRegistered(site_id=site_id, name=site_id.replace("-", " ").title(), kind=kind, city="Wuhan")
        await self.publish(self.settings.reference_topic, site_id, payload, "warehouse")

    async def recipient(self, recipient_id: str, site_id: str) -> None:
        payload = ref.RecipientRegistered(
            recipient_id=recipient_id,
            name=recipient_id,
            kind=ref.RecipientKind.HOSPITAL,
            frontline=True,
            site_id=site_id,
        )
        await self.publish(self.settings.reference_topic, recipient_id, payload, "recipient")

    async def batch(
        self, batch_id: str, quantity: int, recipient_id: str, *, site: str = WAREHOUSE, until: str = "picked"
    ) -> None:
        """A batch's real lifecycle from pledged up to `until` (at most picked), on its own partition, in order."""
        lifecycle: list[tuple[str, ev.Payload]] = [
            ("pledge", ev.BatchPledged(
                pledge_id=f"pledge-{batch_id}", donor_id="xiaomi", line_no=1, item="n95-mask", quantity=quantity,
                unit=ev.Unit.PIECE, standard="N95", warehouse_id=site,
            )),
            ("warehouse", ev.BatchReceived(site_id=site, quantity_received=quantity, lot="L-2020-02")),
            ("warehouse", ev.BatchInspected(
                inspector="qc.zhang", standard_checked="N95", accepted=quantity, rejected=0, quarantined=0
            )),
            ("warehouse", ev.BatchAllocated(
                allocation_id=f"alloc-{batch_id}", need_id="need-1", recipient_id=recipient_id, quantity=quantity
            )),
            ("warehouse", ev.BatchPicked(allocation_id=f"alloc-{batch_id}", quantity=quantity, picker="op.li")),
        ]  # fmt: skip
        for source, payload in lifecycle[: TO_PICKED.index(until) + 1]:
            await self.publish(self.settings.batch_topic, batch_id, payload, source)


class Dispatch:
    """The running service, the seeder, and a few calls every test makes."""

    def __init__(self, service: ServiceHandle, seeder: Seeder):
        self.service = service
        self.seed = seeder

    def dispatcher(self, *site_ids: str, subject: str = "li") -> dict[str, str]:
        return self.service.auth(Role.dispatcher, subject, sites=list(site_ids))

    async def batch_status(self, batch_id: str) -> str | None:
        response = await self.service.get(f"/batches/{batch_id}")
        return str(response.json()["state"]["status"]) if response.status_code == 200 else None

    async def seed_batch(
        self, batch_id: str, quantity: int, recipient_id: str = JINYINTAN, until: str = "picked"
    ) -> None:
        """Seed a batch up to `until` (allocated or picked) and wait until dispatch has folded it to that state."""
        await self.seed.batch(batch_id, quantity, recipient_id, until=until)
        await wait_until(lambda: self._has_status(batch_id, until), what=f"dispatch to see {batch_id} {until}")

    async def _has_status(self, batch_id: str, status: str) -> bool:
        return await self.batch_status(batch_id) == status

    async def plan(
        self, batch_ids: list[str], legs: list[dict[str, Any]], headers: dict[str, str] | None = None, **extra: Any
    ) -> httpx.Response:
        body = {"recipient_id": JINYINTAN, "batch_ids": batch_ids, "legs": legs, **extra}
        return await self.service.post("/shipments", json=body, headers=headers or {})

    async def move(self, shipment_id: str, action: str, **kwargs: Any) -> httpx.Response:
        return await self.service.post(f"/shipments/{shipment_id}/{action}", **kwargs)

    async def event_types(self, batch_id: str) -> list[str]:
        response = await self.service.get(f"/batches/{batch_id}/events")
        return [event["type"].split(".")[-2] for event in response.json()]


@pytest.fixture
async def dispatch(database_url: str, topic_prefix: str, kafka_bootstrap: str) -> AsyncIterator[Dispatch]:
    settings = service_settings("dispatch", database_url, topic_prefix, kafka_bootstrap, topic_partitions=3)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        async with running_service("dispatch", settings) as service:
            world = Dispatch(service, Seeder(producer, settings))
            await seed_world(world)
            yield world
    finally:
        await producer.stop()


async def seed_world(world: Dispatch) -> None:
    """Two warehouses, the Xiantao relay hub, and two Wuhan hospitals with their facilities."""
    kinds = ref.SiteKind
    for site_id, kind in [
        (WAREHOUSE, kinds.WAREHOUSE),
        (OTHER_WAREHOUSE, kinds.WAREHOUSE),
        (HUB, kinds.RELAY_HUB),
        (JINYINTAN_SITE, kinds.RECIPIENT_FACILITY),
        (TONGJI_SITE, kinds.RECIPIENT_FACILITY),
    ]:
        await world.seed.site(site_id, kind)
    await world.seed.recipient(JINYINTAN, JINYINTAN_SITE)
    await world.seed.recipient(TONGJI, TONGJI_SITE)
    await wait_until(lambda: _reference_rows(world.service, 5, 2), what="dispatch to learn the sites and recipients")


async def _reference_rows(service: ServiceHandle, site_count: int, recipient_count: int) -> bool:
    async with service.runtime.database.read() as conn:
        found_sites = (await conn.execute(sa.select(sa.func.count()).select_from(sites))).scalar()
        found_recipients = (await conn.execute(sa.select(sa.func.count()).select_from(recipients))).scalar()
    return found_sites == site_count and found_recipients == recipient_count


async def read_topic(bootstrap: str, topic: str, wanted: int) -> list[Envelope]:
    """Everything on a topic from the beginning, once at least `wanted` records have arrived."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    found: list[Envelope] = []
    try:
        async with asyncio.timeout(30):
            while len(found) < wanted:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    found.extend(from_record(r.headers, r.value) for r in records)
    finally:
        await consumer.stop()
    return found


def error_of(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


# --- the journey -------------------------------------------------------------------------------------------


async def test_shipment_through_the_relay_hub_with_a_carrier_handover(dispatch: Dispatch) -> None:
    await dispatch.seed_batch("b-masks", 2000)
    await dispatch.seed_batch("b-suits", 500)
    ready = (await dispatch.service.get("/ready-to-ship", params={"site_id": WAREHOUSE})).json()
    assert [(b["batch_id"], b["quantity"], b["recipient_id"]) for b in ready["items"]] == [
        ("b-masks", 2000, JINYINTAN),
        ("b-suits", 500, JINYINTAN),
    ]

    at_warehouse, at_hub = dispatch.dispatcher(WAREHOUSE), dispatch.dispatcher(HUB, subject="wang")
    planned = await dispatch.plan(["b-masks", "b-suits"], VIA_HUB, shipment_id="shp-1", headers=at_warehouse)
    assert planned.status_code == 201, planned.text
    assert planned.json()["status"] == "planned" and planned.json()["allowed_next"] == ["dispatch"]
    assert (await dispatch.service.get("/ready-to-ship")).json()["total"] == 0, "planned batches are not ready"
    listed = await dispatch.service.get("/ready-to-ship", params={"include_planned": "true"})
    assert {b["planned_shipment_id"] for b in listed.json()["items"]} == {"shp-1"}

    steps = [
        ("dispatch", at_warehouse, None, "in_transit"),
        ("arrive", at_hub, None, "at_hub"),
        ("handover", at_hub, {"to_carrier": "China Post EMS", "vehicle": "E-24680"}, "at_hub"),
        ("depart", at_hub, None, "in_transit"),
        ("deliver", at_hub, None, "delivered"),
    ]
    for action, headers, body, status in steps:
        moved = await dispatch.move("shp-1", action, headers=headers, json=body)
        assert moved.status_code == 200, moved.text
        assert moved.json()["status"] == status
        assert len(moved.json()["events"]) == 2

    shipment = (await dispatch.service.get("/shipments/shp-1")).json()
    assert (shipment["status"], shipment["current_leg_no"], shipment["carrier"]) == ("delivered", 2, "China Post EMS")
    assert [(leg["status"], leg["actual_carrier"]) for leg in shipment["legs"]] == [
        ("arrived", "SF Express"),
        ("delivered", "China Post EMS"),
    ]
    assert [(b["status"], b["delivered"], b["site_id"]) for b in shipment["batches"]] == [
        ("delivered", 2000, JINYINTAN_SITE),
        ("delivered", 500, JINYINTAN_SITE),
    ]
    journey = [*TO_PICKED, "dispatched", "arrived", "handed-over", "departed", "delivered"]
    for batch_id in ("b-masks", "b-suits"):
        assert await dispatch.event_types(batch_id) == journey
        events = (await dispatch.service.get(f"/batches/{batch_id}/events")).json()
        assert [e["actor"] for e in events[5:]] == ["dispatcher:li", *["dispatcher:wang"] * 4]
        assert {e["source"] for e in events[5:]} == {"dispatch"}

    await _published_in_order(dispatch, journey)
    batches = next(c for c in dispatch.service.runtime.consumers if c.name.endswith(".batches"))
    await wait_until(lambda: _applied(batches, 20), what="dispatch to consume its own events back from Kafka")
    for batch_id in ("b-masks", "b-suits"):
        assert await dispatch.event_types(batch_id) == journey, "an echo of our own event is not applied twice"


async def _published_in_order(dispatch: Dispatch, journey: list[str]) -> None:
    """Through the outbox and the relay, each batch's stream on Kafka is the whole journey, in order, once."""
    settings = dispatch.service.settings
    on_kafka = await read_topic(settings.kafka_bootstrap, settings.batch_topic, 2 * len(journey))
    for batch_id in ("b-masks", "b-suits"):
        assert [e.type.split(".")[-2] for e in on_kafka if e.subject == batch_id] == journey
    reference = await read_topic(settings.kafka_bootstrap, settings.reference_topic, 8)
    plans = [e for e in reference if e.type == ref.ShipmentPlanned.event_type]
    assert [(e.subject, e.actor, e.data["batch_ids"]) for e in plans] == [
        ("shp-1", "dispatcher:li", ["b-masks", "b-suits"])
    ]
    assert [leg["leg_no"] for leg in plans[0].data["legs"]] == [1, 2]


# --- losses ------------------------------------------------------------------------------------------------


async def test_loss_in_transit_is_written_off_and_delivered_plus_written_off_equals_dispatched(
    dispatch: Dispatch,
) -> None:
    await dispatch.seed_batch("b-kits", 1000)
    await dispatch.seed_batch("b-beds", 40)
    assert (await dispatch.plan(["b-kits", "b-beds"], DIRECT, shipment_id="shp-2")).status_code == 201
    assert (await dispatch.move("shp-2", "dispatch")).status_code == 200

    damaged = {"batch_id": "b-kits", "quantity": 150, "reason": "damaged", "note": "cartons soaked in rain"}
    written = await dispatch.move("shp-2", "write-off", json=damaged)
    assert written.status_code == 200, written.text
    assert written.json()["status"] == "in_transit"
    lost = {"batch_id": "b-beds", "quantity": 40, "reason": "lost", "note": "truck missing since Xiantao"}
    assert (await dispatch.move("shp-2", "write-off", json=lost)).status_code == 200
    too_much = {**damaged, "quantity": 851}
    refused = await dispatch.move("shp-2", "write-off", json=too_much)
    assert refused.status_code == 422
    assert "only 850 are in transit; cannot write off 851" in error_of(refused)["message"]

    delivered = await dispatch.move("shp-2", "deliver")
    assert delivered.status_code == 200, delivered.text
    assert [e["batch_id"] for e in delivered.json()["events"]] == ["b-kits"], "a batch lost whole stays behind"

    for batch_id, dispatched, written_off, arrived in [("b-kits", 1000, 150, 850), ("b-beds", 40, 40, 0)]:
        state = (await dispatch.service.get(f"/batches/{batch_id}")).json()["state"]
        assert (state["dispatched"], state["written_off_transit"], state["delivered"]) == (
            dispatched,
            written_off,
            arrived,
        )
        assert state["delivered"] + state["written_off_transit"] == state["dispatched"]
    assert await dispatch.event_types("b-kits") == [*TO_PICKED, "dispatched", "written-off", "delivered"]
    events = (await dispatch.service.get("/batches/b-kits/events")).json()
    recorded = {key: value for key, value in damaged.items() if key != "batch_id"}
    assert events[6]["data"] == {**recorded, "stage": "transit", "shipment_id": "shp-2"}
    shipment = (await dispatch.service.get("/shipments/shp-2")).json()
    assert [b["status"] for b in shipment["batches"]] == ["delivered", "written_off"]


# --- validation --------------------------------------------------------------------------------------------


async def test_invalid_plans_are_refused_with_a_422_that_says_what_to_fix(dispatch: Dispatch) -> None:
    await dispatch.seed_batch("b-picked", 100)
    await dispatch.seed_batch("b-unpicked", 100, until="allocated")
    await dispatch.seed_batch("b-tongji", 100, TONGJI)
    not_chained = [VIA_HUB[0], {**VIA_HUB[1], "from_site_id": OTHER_WAREHOUSE}]
    unknown_hub = [{**VIA_HUB[0], "to_site_id": "hub-nowhere"}, {**VIA_HUB[1], "from_site_id": "hub-nowhere"}]
    cases: list[tuple[list[str], list[dict[str, Any]], dict[str, Any], str]] = [
        (["b-unpicked"], VIA_HUB, {}, "batch b-unpicked is allocated; only picked batches can be shipped"),
        (["b-tongji"], VIA_HUB, {}, "batch b-tongji is allocated to tongji-hospital, not jinyintan-hospital"),
        (["b-picked"], not_chained, {}, "leg 2 starts at wh-wuhan-2 but leg 1 ends at hub-xiantao"),
        (["b-picked"], unknown_hub, {}, "unknown site(s): hub-nowhere"),
        (["b-picked"], [{**DIRECT[0], "to_site_id": TONGJI_SITE}], {}, "the recipient's facility is site-jinyintan"),
        (["b-picked"], VIA_HUB, {"recipient_id": "ghost-hospital"}, "recipient ghost-hospital is not known"),
        (["b-ghost"], VIA_HUB, {}, "batch b-ghost is not known to dispatch"),
    ]
    for batch_ids, legs, extra, expected in cases:
        response = await dispatch.plan(batch_ids, legs, **extra)
        assert response.status_code == 422, f"{expected}: {response.text}"
        assert expected in error_of(response)["message"]
    missing_field = await dispatch.service.post("/shipments", json={"recipient_id": JINYINTAN, "legs": DIRECT})
    assert missing_field.status_code == 422
    assert "batch_ids" in error_of(missing_field)["message"]
    assert (await dispatch.service.get("/shipments")).json()["total"] == 0, "a refused plan writes nothing"
    assert await dispatch.event_types("b-picked") == TO_PICKED


async def test_a_batch_cannot_be_on_two_open_shipments(dispatch: Dispatch) -> None:
    await dispatch.seed_batch("b-1", 10)
    await dispatch.seed_batch("b-2", 10)
    assert (await dispatch.plan(["b-1"], VIA_HUB, shipment_id="shp-a")).status_code == 201
    again = await dispatch.plan(["b-2", "b-1"], DIRECT, shipment_id="shp-b")
    assert again.status_code == 409
    assert "batch b-1 is on shipment shp-a (planned)" in error_of(again)["message"]
    same_id = await dispatch.plan(["b-2"], DIRECT, shipment_id="shp-a")
    assert same_id.status_code == 409 and "shp-a is already taken" in error_of(same_id)["message"]
    listed = await dispatch.service.get("/shipments", params={"batch_id": "b-1"})
    assert [s["shipment_id"] for s in listed.json()["items"]] == ["shp-a"]


async def test_concurrent_commands_on_the_same_goods_let_exactly_one_through(dispatch: Dispatch) -> None:
    await dispatch.seed_batch("b-1", 10)
    racing = await asyncio.gather(*(dispatch.plan(["b-1"], DIRECT, shipment_id=f"shp-{n}") for n in range(3)))
    assert sorted(r.status_code for r in racing) == [201, 409, 409], [r.text for r in racing]
    winner = next(r.json()["shipment_id"] for r in racing if r.status_code == 201)
    assert (await dispatch.service.get("/shipments")).json()["total"] == 1

    dispatched = await asyncio.gather(*(dispatch.move(winner, "dispatch") for _ in range(3)))
    assert sorted(r.status_code for r in dispatched) == [200, 409, 409], [r.text for r in dispatched]
    assert await dispatch.event_types("b-1") == [*TO_PICKED, "dispatched"]


async def test_out_of_order_movement_is_a_409_naming_current_states_and_what_is_next(dispatch: Dispatch) -> None:
    await dispatch.seed_batch("b-1", 10)
    assert (await dispatch.plan(["b-1"], VIA_HUB, shipment_id="shp-3")).status_code == 201

    early = await dispatch.move("shp-3", "deliver")
    assert early.status_code == 409
    error = error_of(early)
    assert (error["current_state"], error["allowed"]) == ("planned", ["dispatch"])
    assert "its batches: b-1 picked" in error["message"]
    assert (await dispatch.move("shp-3", "write-off", json={**_loss("b-1"), "quantity": 1})).status_code == 409

    assert (await dispatch.move("shp-3", "dispatch")).status_code == 200
    skipped_hub = await dispatch.move("shp-3", "deliver")
    assert skipped_hub.status_code == 409
    assert "ends at relay hub hub-xiantao: arrive first" in error_of(skipped_hub)["message"]
    assert (await dispatch.move("shp-3", "arrive")).status_code == 200
    twice = await dispatch.move("shp-3", "arrive")
    assert twice.status_code == 409
    error = error_of(twice)
    assert (error["current_state"], error["allowed"]) == ("at_hub", ["handover", "depart", "write-off"])
    assert "b-1 at_hub" in error["message"]

    assert (await dispatch.move("shp-3", "depart")).status_code == 200
    at_facility = await dispatch.move("shp-3", "arrive")
    assert at_facility.status_code == 409
    assert "ends at the recipient's facility: use deliver" in error_of(at_facility)["message"]
    assert (await dispatch.move("shp-3", "deliver")).status_code == 200
    closed = await dispatch.move("shp-3", "dispatch")
    assert closed.status_code == 409
    assert error_of(closed)["current_state"] == "delivered"
    assert "Allowed next: nothing (final)" in error_of(closed)["message"]
    assert await dispatch.event_types("b-1") == [*TO_PICKED, "dispatched", "arrived", "departed", "delivered"]
    missing = await dispatch.move("shp-nope", "dispatch")
    assert missing.status_code == 404 and "GET /shipments" in error_of(missing)["message"]


def _loss(batch_id: str) -> dict[str, Any]:
    return {"batch_id": batch_id, "quantity": 1, "reason": "lost", "note": "fell off"}


# --- idempotency and access --------------------------------------------------------------------------------


async def test_a_replayed_request_with_the_same_idempotency_key_writes_nothing_new(dispatch: Dispatch) -> None:
    await dispatch.seed_batch("b-1", 10)
    key = {"Idempotency-Key": "plan-shp-4"}
    first = await dispatch.plan(["b-1"], DIRECT, headers=key)
    replay = await dispatch.plan(["b-1"], DIRECT, headers=key)
    assert first.status_code == replay.status_code == 201
    assert replay.json() == first.json() and replay.headers["Idempotent-Replay"] == "true"
    shipment_id = first.json()["shipment_id"]
    assert (await dispatch.service.get("/shipments")).json()["total"] == 1

    move_key = {"Idempotency-Key": "dispatch-shp-4"}
    moved = await dispatch.move(shipment_id, "dispatch", headers=move_key)
    again = await dispatch.move(shipment_id, "dispatch", headers=move_key)
    assert moved.status_code == again.status_code == 200
    assert again.json()["events"] == moved.json()["events"]
    assert await dispatch.event_types("b-1") == [*TO_PICKED, "dispatched"], "one dispatch, not two"

    reused = await dispatch.move(shipment_id, "write-off", headers=move_key, json=_loss("b-1"))
    assert reused.status_code == 422 and "Idempotency-Key was already used" in error_of(reused)["message"]


async def test_a_dispatcher_acts_only_where_the_goods_are(dispatch: Dispatch) -> None:
    await dispatch.seed_batch("b-1", 10)
    elsewhere = dispatch.dispatcher(OTHER_WAREHOUSE, subject="zhao")
    refused = await dispatch.plan(["b-1"], VIA_HUB, shipment_id="shp-5", headers=elsewhere)
    assert refused.status_code == 403 and "may not act on site 'wh-wuhan-1'" in error_of(refused)["message"]
    auditor = dispatch.service.auth(Role.auditor, "audit")
    assert (await dispatch.plan(["b-1"], VIA_HUB, shipment_id="shp-5", headers=auditor)).status_code == 403
    assert (await dispatch.plan(["b-1"], VIA_HUB, shipment_id="shp-5")).status_code == 201  # admin

    assert (await dispatch.move("shp-5", "dispatch", headers=elsewhere)).status_code == 403
    assert (await dispatch.move("shp-5", "dispatch", headers=dispatch.dispatcher(WAREHOUSE))).status_code == 200
    at_origin_only = await dispatch.move("shp-5", "arrive", headers=dispatch.dispatcher(WAREHOUSE))
    assert at_origin_only.status_code == 403 and "done at hub-xiantao" in error_of(at_origin_only)["message"]
    assert (await dispatch.move("shp-5", "arrive", headers=dispatch.dispatcher(HUB))).status_code == 200
    assert (await dispatch.move("shp-5", "depart", headers=auditor)).status_code == 403
    read = await dispatch.service.get("/shipments/shp-5", headers=auditor)
    assert read.status_code == 200 and read.json()["status"] == "at_hub" and read.json()["current_site_id"] == HUB
    assert await dispatch.event_types("b-1") == [*TO_PICKED, "dispatched", "arrived"]


# --- lists and replay --------------------------------------------------------------------------------------


async def test_shipments_are_listed_by_status_recipient_and_site(dispatch: Dispatch) -> None:
    for n in range(3):
        await dispatch.seed_batch(f"b-{n}", 10)
    await dispatch.seed_batch("b-t", 10, TONGJI)
    assert (await dispatch.plan(["b-0"], VIA_HUB, shipment_id="shp-a")).status_code == 201
    assert (await dispatch.plan(["b-1"], DIRECT, shipment_id="shp-b")).status_code == 201
    assert (await dispatch.plan(["b-2"], DIRECT, shipment_id="shp-c")).status_code == 201
    tongji = [{**DIRECT[0], "to_site_id": TONGJI_SITE}]
    assert (await dispatch.plan(["b-t"], tongji, shipment_id="shp-t", recipient_id=TONGJI)).status_code == 201
    assert (await dispatch.move("shp-b", "dispatch")).status_code == 200

    async def ids(**params: Any) -> list[str]:
        page = (await dispatch.service.get("/shipments", params=params)).json()
        return sorted(s["shipment_id"] for s in page["items"])

    assert await ids(status="in_transit") == ["shp-b"]
    assert await ids(recipient_id=TONGJI) == ["shp-t"]
    assert await ids(site_id=HUB) == ["shp-a"]
    first = (await dispatch.service.get("/shipments", params={"limit": 3})).json()
    assert (first["total"], len(first["items"]), first["next_offset"]) == (4, 3, 3)
    bad = await dispatch.service.get("/shipments", params={"status": "lost-at-sea"})
    assert bad.status_code == 422


async def test_replaying_the_reference_topic_from_zero_rebuilds_the_same_sites_and_recipients(
    dispatch: Dispatch,
) -> None:
    await dispatch.seed.site(HUB, ref.SiteKind.RELAY_HUB)  # registered again: the same row, not a second one
    consumer = next(c for c in dispatch.service.runtime.consumers if c.name.endswith(".reference"))
    await wait_until(lambda: _applied(consumer, 8), what="the second registration of the hub to be applied")
    before = await _reference_snapshot(dispatch.service)
    assert len(before[0]) == 5 and len(before[1]) == 2

    await consumer.stop()
    consumer.stats = ConsumerStats()
    async with dispatch.service.runtime.database.transaction() as conn:
        await conn.execute(sites.delete())
        await conn.execute(recipients.delete())
        await forget_consumer(conn, consumer.name)
    await consumer.start()
    await wait_until(lambda: _applied(consumer, 8), what="the replay to reach the end of the reference topic")
    assert await _reference_snapshot(dispatch.service) == before


async def _applied(consumer: ProjectionConsumer, count: int) -> bool:
    return consumer.stats.applied >= count and not any(consumer.stats.lag.values())


async def _reference_snapshot(service: ServiceHandle) -> tuple[list[Any], list[Any]]:
    async with service.runtime.database.read() as conn:
        site_rows = (await conn.execute(sa.select(sites).order_by(sites.c.site_id))).all()
        recipient_rows = (await conn.execute(sa.select(recipients).order_by(recipients.c.recipient_id))).all()
    return [tuple(row) for row in site_rows], [tuple(row) for row in recipient_rows]
