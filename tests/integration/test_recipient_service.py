"""The recipient service in-process, against the real broker, on SQLite and on PostgreSQL.

Delivered batches are produced straight onto the test's batch topic as real, valid CloudEvents (pledged ->
received -> inspected -> allocated -> picked -> dispatched -> delivered): the path by which the service learns
batches in production, without depending on the warehouse and dispatch services.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.domain.batch_fold import short_name
from shared.events import batch_events as ev
from shared.events import reference_events as ref
from shared.events.envelope import Envelope, encode_data, from_record, new_event_id, to_headers
from shared.events.registry import payload_data
from shared.settings import Settings
from shared.store.schema import events, outbox
from shared.web.auth import Role
from tests.harness import ServiceHandle, running_service, service_settings, wait_until

JINYINTAN = {
    "recipient_id": "jinyintan-hospital",
    "name": "Wuhan Jinyintan Hospital",
    "kind": "hospital",
    "frontline": True,
    "site_id": "jinyintan-receiving",
    "city": "Wuhan",
    "country": "CN",
}
HUANGGANG = {
    "recipient_id": "huanggang-health-committee",
    "name": "Huanggang Municipal Health Committee",
    "kind": "health_committee",
    "frontline": False,
    "site_id": "huanggang-depot",
    "city": "Huanggang",
    "country": "cn",
}
FUTURE = "2099-02-05T18:00:00+08:00"
STAGES = ("pledged", "received", "inspected", "allocated", "picked", "dispatched", "delivered")


# --- seeding the batch topic -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    """A batch headed for one recipient's need; `life` is its events up to and including `until`."""

    batch_id: str
    recipient_id: str
    site_id: str
    need_id: str
    quantity: int
    item: str = "n95-mask"

    def life(self, until: str = "delivered") -> list[ev.Payload]:
        q = self.quantity
        full: list[ev.Payload] = [
            ev.BatchPledged(
                pledge_id="xiaomi-2020-01",
                donor_id="xiaomi",
                line_no=1,
                item=self.item,
                quantity=q,
                unit=ev.Unit.PIECE,
                standard="N95",
                warehouse_id="wh-wuhan-1",
            ),
            ev.BatchReceived(site_id="wh-wuhan-1", quantity_received=q, lot="L-0123"),
            ev.BatchInspected(inspector="qc-li", standard_checked="N95", accepted=q, rejected=0, quarantined=0),
            ev.BatchAllocated(
                allocation_id=f"{self.batch_id}-a", need_id=self.need_id, recipient_id=self.recipient_id, quantity=q
            ),
            ev.BatchPicked(allocation_id=f"{self.batch_id}-a", quantity=q, picker="picker-wang"),
            ev.BatchDispatched(
                shipment_id=f"ship-{self.batch_id}",
                leg_no=1,
                from_site_id="wh-wuhan-1",
                to_site_id=self.site_id,
                carrier="sf-express",
                quantity=q,
            ),
            ev.BatchDelivered(
                shipment_id=f"ship-{self.batch_id}", site_id=self.site_id, recipient_id=self.recipient_id, quantity=q
            ),
        ]
        return full[: STAGES.index(until) + 1]


def source_of(payload: ev.Payload) -> str:
    name = short_name(payload.event_type)
    return "pledge" if name == "pledged" else "dispatch" if name in ("dispatched", "delivered") else "warehouse"


class BatchSeeder:
    """Produces batch events onto the test's batch topic, as the pledge, warehouse and dispatch services would."""

    def __init__(self, producer: AIOKafkaProducer, topic: str):
        self.producer = producer
        self.topic = topic

    async def send(self, batch_id: str, payloads: list[ev.Payload]) -> None:
        correlation_id = new_event_id()
        for payload in payloads:
            envelope = Envelope(
                type=payload.event_type,
                source=source_of(payload),
                subject=batch_id,
                data=payload_data(payload),
                actor="operator:seeder",
                correlation_id=correlation_id,
            )
            await self.producer.send_and_wait(
                self.topic, value=encode_data(envelope), key=batch_id.encode(), headers=to_headers(envelope)
            )


# --- fixtures and helpers --------------------------------------------------------------------------------


@pytest.fixture
async def service(database_url: str, topic_prefix: str, kafka_bootstrap: str) -> AsyncIterator[ServiceHandle]:
    settings = service_settings("recipient", database_url, topic_prefix, kafka_bootstrap)
    async with running_service("recipient", settings) as handle:
        yield handle


@pytest.fixture
async def seeder(service: ServiceHandle, kafka_bootstrap: str) -> AsyncIterator[BatchSeeder]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        yield BatchSeeder(producer, service.settings.batch_topic)
    finally:
        await producer.stop()


def staff_of(service: ServiceHandle, recipient_id: str, subject: str = "nurse-chen") -> dict[str, str]:
    return service.auth(Role.recipient_staff, subject, recipient_id=recipient_id)


async def register(service: ServiceHandle, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return await service.post("/recipients", json=body, **kwargs)


async def add_need(service: ServiceHandle, **fields: Any) -> dict[str, Any]:
    body = {"item": "n95-mask", "quantity": 100, "priority": "normal", **fields}
    response = await service.post("/needs", json=body)
    assert response.status_code == 201, response.text
    need: dict[str, Any] = response.json()
    return need


async def seed(service: ServiceHandle, seeder: BatchSeeder, batch: Batch, until: str = "delivered") -> None:
    life = batch.life(until)
    await seeder.send(batch.batch_id, life)
    await wait_until(lambda: batch_version(service, batch.batch_id, len(life)), what=f"{batch.batch_id} {until} here")


async def batch_version(service: ServiceHandle, batch_id: str, expected: int) -> bool:
    """The service has folded all of the batch's seeded events."""
    response = await service.get(f"/batches/{batch_id}")
    return response.status_code == 200 and response.json()["state"]["version"] == expected


async def confirm(service: ServiceHandle, batch_id: str, **kwargs: Any) -> httpx.Response:
    return await service.post(f"/batches/{batch_id}/confirm-receipt", **kwargs)


async def stored_events(service: ServiceHandle, event_type: str) -> list[sa.Row[Any]]:
    async with service.runtime.database.read() as conn:
        query = sa.select(events).where(events.c.event_type == event_type).order_by(events.c.position)
        return list((await conn.execute(query)).all())


async def all_published(service: ServiceHandle) -> bool:
    async with service.runtime.database.read() as conn:
        unsent = sa.select(sa.func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))
        return int((await conn.execute(unsent)).scalar() or 0) == 0


async def read_to_end(settings: Settings, topic: str) -> list[Envelope]:
    """Everything on the topic up to its current end, so an extra (duplicated) record would be seen too."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[Envelope] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found.extend(from_record(r.headers, r.value) for r in records)
        return found
    finally:
        await consumer.stop()


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


# --- recipients ------------------------------------------------------------------------------------------


async def test_registers_a_frontline_hospital_and_a_health_committee_with_their_facilities(
    service: ServiceHandle,
) -> None:
    hospital = await register(service, JINYINTAN)
    committee = await register(service, HUANGGANG)
    assert hospital.status_code == 201, hospital.text
    assert committee.status_code == 201, committee.text
    assert committee.json()["country"] == "CN", "country codes are stored upper-case"

    frontline = (await service.get("/recipients", params={"frontline": "true"})).json()
    assert [r["recipient_id"] for r in frontline["items"]] == ["jinyintan-hospital"]
    committees = (await service.get("/recipients", params={"kind": "health_committee", "country": "cn"})).json()
    assert [r["recipient_id"] for r in committees["items"]] == ["huanggang-health-committee"]
    assert (await service.get("/recipients", params={"country": "IT"})).json()["total"] == 0
    one = await service.get("/recipients/jinyintan-hospital")
    assert one.json()["site_id"] == "jinyintan-receiving"

    registered = await stored_events(service, ref.RecipientRegistered.event_type)
    sites = await stored_events(service, ref.SiteRegistered.event_type)
    assert [e.stream_id for e in registered] == ["jinyintan-hospital", "huanggang-health-committee"]
    assert [e.stream_id for e in sites] == ["jinyintan-receiving", "huanggang-depot"]
    site = ref.SiteRegistered.model_validate_json(sites[0].data)
    assert (site.kind, site.recipient_id) == (ref.SiteKind.RECIPIENT_FACILITY, "jinyintan-hospital")
    assert sites[0].causation_id == registered[0].event_id, "the facility is registered because of the recipient"
    assert {e.actor for e in registered + sites} == {"admin:tester"}

    await wait_until(lambda: all_published(service), what="recipient events published")
    published = await read_to_end(service.settings, service.settings.reference_topic)
    assert sorted(e.subject for e in published) == sorted(
        ["jinyintan-hospital", "jinyintan-receiving", "huanggang-health-committee", "huanggang-depot"]
    )


async def test_recipient_registration_is_admin_only_unique_and_idempotent(service: ServiceHandle) -> None:
    staff = await register(service, JINYINTAN, headers=staff_of(service, "jinyintan-hospital"))
    assert staff.status_code == 403
    assert "allowed roles: admin" in error_of(staff)["message"]

    key = {"Idempotency-Key": "register-jinyintan"}
    first = await register(service, JINYINTAN, headers=key)
    replay = await register(service, JINYINTAN, headers=key)
    assert first.status_code == replay.status_code == 201
    assert replay.json() == first.json()
    assert replay.headers["Idempotent-Replay"] == "true"
    assert len(await stored_events(service, ref.RecipientRegistered.event_type)) == 1

    again = await register(service, JINYINTAN)
    assert again.status_code == 409
    assert "already registered" in error_of(again)["message"]
    same_site = await register(service, {**HUANGGANG, "site_id": "jinyintan-receiving"})
    assert same_site.status_code == 409
    assert "already the facility of recipient jinyintan-hospital" in error_of(same_site)["message"]
    other_body = await register(service, HUANGGANG, headers=key)
    assert other_body.status_code == 422
    assert "Idempotency-Key was already used" in error_of(other_body)["message"]


BAD_RECIPIENTS: list[tuple[dict[str, Any], str, str]] = [
    ({"kind": "clinic"}, "body.kind", "'hospital', 'health_committee' or 'civil_protection'"),
    ({"country": "China"}, "body.country", "pattern"),
    ({"site_id": "jinyintan hospital"}, "body.site_id", "pattern"),
    ({"name": ""}, "body.name", "at least 1 character"),
    ({"frontline": None}, "body.frontline", "valid boolean"),
]


async def test_bad_recipients_are_refused_with_a_clear_422_naming_the_field(service: ServiceHandle) -> None:
    for change, field, words in BAD_RECIPIENTS:
        response = await register(service, {**JINYINTAN, **change})
        assert response.status_code == 422, change
        problems = error_of(response)["problems"]
        assert [p["field"] for p in problems] == [field], change
        assert words in problems[0]["problem"], change
    same_ids = await register(service, {**JINYINTAN, "site_id": "jinyintan-hospital"})
    assert same_ids.status_code == 422
    assert "site_id must differ from recipient_id" in error_of(same_ids)["message"]
    assert await stored_events(service, ref.RecipientRegistered.event_type) == []


# --- needs -----------------------------------------------------------------------------------------------


async def test_needs_are_listed_most_urgent_first_with_what_remains(service: ServiceHandle) -> None:
    await register(service, JINYINTAN)
    await register(service, HUANGGANG)
    await add_need(service, need_id="jyt-gloves", recipient_id="jinyintan-hospital", item="gloves", priority="low")
    await add_need(
        service,
        need_id="jyt-n95",
        recipient_id="jinyintan-hospital",
        quantity=20000,
        priority="critical",
        deadline=FUTURE,
    )
    await add_need(
        service,
        need_id="hg-suits",
        recipient_id="huanggang-health-committee",
        item="protective-suit",
        quantity=3000,
        priority="high",
    )
    await add_need(
        service,
        need_id="jyt-n95-soon",
        recipient_id="jinyintan-hospital",
        quantity=5000,
        priority="critical",
        deadline="2099-01-01T00:00:00Z",
    )

    listed = (await service.get("/needs")).json()
    assert [n["need_id"] for n in listed["items"]] == ["jyt-n95-soon", "jyt-n95", "hg-suits", "jyt-gloves"]
    first = listed["items"][0]
    assert (first["quantity"], first["received"], first["remaining"], first["status"]) == (5000, 0, 5000, "open")
    assert first["deadline"].startswith("2099-01-01T00:00:00")

    mine = (await service.get("/needs", params={"recipient_id": "jinyintan-hospital", "item": "n95-mask"})).json()
    assert {n["need_id"] for n in mine["items"]} == {"jyt-n95", "jyt-n95-soon"}
    assert (await service.get("/needs", params={"status": "fulfilled"})).json()["total"] == 0
    paged = (await service.get("/needs", params={"limit": 3, "offset": 3})).json()
    assert (paged["total"], len(paged["items"]), paged["next_offset"]) == (4, 1, None)
    stored = await stored_events(service, ref.NeedRegistered.event_type)
    assert len(stored) == 4 and {e.actor for e in stored} == {"admin:tester"}


async def test_recipient_staff_register_needs_only_for_their_own_recipient(service: ServiceHandle) -> None:
    await register(service, JINYINTAN)
    await register(service, HUANGGANG)
    body = {"recipient_id": "jinyintan-hospital", "item": "n95-mask", "quantity": 100, "priority": "high"}
    own = await service.post("/needs", json=body, headers=staff_of(service, "jinyintan-hospital"))
    assert own.status_code == 201, own.text
    (event,) = await stored_events(service, ref.NeedRegistered.event_type)
    assert event.actor == "recipient_staff:nurse-chen"

    other = await service.post("/needs", json=body, headers=staff_of(service, "huanggang-health-committee"))
    assert other.status_code == 403
    assert "may not act for recipient 'jinyintan-hospital'" in error_of(other)["message"]
    historical = {**body, "deadline": "2020-02-05T18:00:00+08:00", "historical": True}
    backfill = await service.post("/needs", json=historical, headers=staff_of(service, "jinyintan-hospital"))
    assert backfill.status_code == 403
    assert (await service.post("/needs", json=historical)).status_code == 201, "an admin may backfill 2020"
    assert len(await stored_events(service, ref.NeedRegistered.event_type)) == 2


BAD_NEEDS: list[tuple[dict[str, Any], str]] = [
    ({"quantity": 0}, "body.quantity: Input should be greater than 0"),
    ({"quantity": -5}, "body.quantity: Input should be greater than 0"),
    ({"priority": "urgent"}, "'critical', 'high', 'normal' or 'low'"),
    ({"deadline": "next friday"}, "'next friday' is not an RFC 3339 timestamp"),
    ({"deadline": "2099-02-05T18:00:00"}, "is not an RFC 3339 timestamp; use an RFC 3339 timestamp with a time zone"),
    ({"deadline": 4073508000}, "is not an RFC 3339 timestamp"),
    ({"deadline": "2099-02-30T18:00:00Z"}, "not a real calendar date"),
    ({"deadline": "2020-02-05T18:00:00+08:00"}, "is in the past"),
    ({"recipient_id": "nowhere-hospital"}, "recipient nowhere-hospital is not registered"),
]


async def test_bad_needs_are_refused_with_a_clear_422(service: ServiceHandle) -> None:
    await register(service, JINYINTAN)
    for change, words in BAD_NEEDS:
        body = {"recipient_id": "jinyintan-hospital", "item": "n95-mask", "quantity": 100, "priority": "high", **change}
        response = await service.post("/needs", json=body)
        assert response.status_code == 422, (change, response.text)
        assert words in error_of(response)["message"], (change, response.text)
    assert await stored_events(service, ref.NeedRegistered.event_type) == []


# --- incoming batches and receipts -----------------------------------------------------------------------


def jinyintan_batch(batch_id: str, quantity: int, need_id: str = "jyt-n95") -> Batch:
    return Batch(batch_id, "jinyintan-hospital", "jinyintan-receiving", need_id, quantity)


async def test_incoming_shows_what_is_on_its_way_and_a_full_receipt_fulfils_the_need_once(
    service: ServiceHandle, seeder: BatchSeeder
) -> None:
    await register(service, JINYINTAN)
    await register(service, HUANGGANG)
    await add_need(service, need_id="jyt-n95", recipient_id="jinyintan-hospital", quantity=1000, priority="critical")
    first, second, extra = jinyintan_batch("b-600", 600), jinyintan_batch("b-400", 400), jinyintan_batch("b-50", 50)
    picked = jinyintan_batch("b-picked", 300)
    elsewhere = Batch("b-huanggang", "huanggang-health-committee", "huanggang-depot", "hg-n95", 700)
    for batch in (first, second, extra, elsewhere):
        await seed(service, seeder, batch)
    await seed(service, seeder, picked, until="picked")

    incoming = (await service.get("/recipients/jinyintan-hospital/incoming")).json()
    by_id = {b["batch_id"]: b for b in incoming["items"]}
    assert set(by_id) == {"b-600", "b-400", "b-50", "b-picked"}, "another recipient's batch is not listed"
    assert (by_id["b-picked"]["status"], by_id["b-picked"]["quantity"], by_id["b-picked"]["shipment_id"]) == (
        "picked",
        300,
        None,
    )
    assert (by_id["b-600"]["status"], by_id["b-600"]["delivered"], by_id["b-600"]["need_id"]) == (
        "delivered",
        600,
        "jyt-n95",
    )
    assert by_id["b-600"]["shipment_id"] == "ship-b-600"
    delivered_only = await service.get("/recipients/jinyintan-hospital/incoming", params={"status": "delivered"})
    assert delivered_only.json()["total"] == 3

    partial = await confirm(service, "b-600", json={"quantity_received": 600, "signed_by": "Dr. Zhang"})
    assert partial.status_code == 200, partial.text
    assert partial.json()["need"]["received"] == 600
    assert partial.json()["need"]["status"] == "open"
    assert partial.json()["need_fulfilled_event_id"] is None

    full = await confirm(service, "b-400", json={"quantity_received": 400, "signed_by": "Dr. Zhang"})
    assert full.status_code == 200, full.text
    answer = full.json()
    assert (answer["status"], answer["recipient_id"]) == ("confirmed", "jinyintan-hospital")
    assert (answer["need"]["received"], answer["need"]["remaining"], answer["need"]["status"]) == (1000, 0, "fulfilled")
    assert answer["need_fulfilled_event_id"]

    more = await confirm(service, "b-50", json={"quantity_received": 50, "signed_by": "Dr. Zhang"})
    assert more.json()["need"]["received"] == 1050, "later receipts still count"
    assert more.json()["need_fulfilled_event_id"] is None, "but do not fulfil the need again"

    (fulfilled,) = await stored_events(service, ref.NeedFulfilled.event_type)
    assert fulfilled.event_id == answer["need_fulfilled_event_id"]
    assert (fulfilled.stream_id, fulfilled.version, fulfilled.actor) == ("jyt-n95", 2, "admin:tester")
    assert ref.NeedFulfilled.model_validate_json(fulfilled.data).quantity_received == 1000
    receipts = await stored_events(service, ev.ReceiptConfirmed.event_type)
    assert fulfilled.causation_id == receipts[1].event_id, "the fulfilment names the receipt that caused it"

    detail = (await service.get("/needs/jyt-n95")).json()
    assert [(r["batch_id"], r["quantity_received"]) for r in detail["receipts"]] == [
        ("b-600", 600),
        ("b-400", 400),
        ("b-50", 50),
    ]
    assert (await service.get("/needs", params={"status": "fulfilled"})).json()["items"][0]["need_id"] == "jyt-n95"
    confirmed = await service.get("/recipients/jinyintan-hospital/incoming", params={"status": "confirmed"})
    assert {b["batch_id"]: b["confirmed_received"] for b in confirmed.json()["items"]} == {
        "b-600": 600,
        "b-400": 400,
        "b-50": 50,
    }

    await wait_until(lambda: all_published(service), what="the outbox to drain")
    published = await read_to_end(service.settings, service.settings.reference_topic)
    assert [e.subject for e in published if e.type == ref.NeedFulfilled.event_type] == ["jyt-n95"]
    on_batches = await read_to_end(service.settings, service.settings.batch_topic)
    assert sorted(e.subject for e in on_batches if e.type == ev.ReceiptConfirmed.event_type) == [
        "b-400",
        "b-50",
        "b-600",
    ]


async def test_a_short_delivery_is_confirmed_only_with_a_discrepancy_reason(
    service: ServiceHandle, seeder: BatchSeeder
) -> None:
    await register(service, JINYINTAN)
    await add_need(service, need_id="jyt-n95", recipient_id="jinyintan-hospital", quantity=500, priority="high")
    await seed(service, seeder, jinyintan_batch("b-500", 500))

    silent = await confirm(service, "b-500", json={"quantity_received": 480, "signed_by": "Dr. Zhang"})
    assert silent.status_code == 422
    assert "500 were delivered but 480 received in good order; give a discrepancy_reason" in error_of(silent)["message"]
    assert error_of(silent)["current_state"] == "delivered"
    damaged = {"quantity_received": 500, "quantity_damaged": 10, "signed_by": "Dr. Zhang"}
    assert (await confirm(service, "b-500", json=damaged)).status_code == 422, "damage always needs a reason"
    too_many = await confirm(
        service, "b-500", json={**damaged, "quantity_received": 495, "discrepancy_reason": "counted twice"}
    )
    assert too_many.status_code == 422
    assert "received 495 + damaged 10 exceed the 500 delivered" in error_of(too_many)["message"]
    negative = await confirm(service, "b-500", json={"quantity_received": -1, "signed_by": "Dr. Zhang"})
    assert negative.status_code == 422
    assert "body.quantity_received: Input should be greater than or equal to 0" in error_of(negative)["message"]
    assert await stored_events(service, ev.ReceiptConfirmed.event_type) == [], "refusals write nothing"

    reason = "12 masks crushed in one carton, 8 missing from the pallet count"
    short = await confirm(
        service,
        "b-500",
        json={"quantity_received": 480, "quantity_damaged": 12, "signed_by": "Dr. Zhang", "discrepancy_reason": reason},
    )
    assert short.status_code == 200, short.text
    assert (short.json()["need"]["received"], short.json()["need"]["remaining"]) == (480, 20), (
        "damaged units do not count"
    )
    assert short.json()["need_fulfilled_event_id"] is None
    state = (await service.get("/batches/b-500")).json()["state"]
    assert (state["status"], state["confirmed_received"], state["confirmed_damaged"]) == ("confirmed", 480, 12)
    (receipt,) = await stored_events(service, ev.ReceiptConfirmed.event_type)
    assert ev.ReceiptConfirmed.model_validate_json(receipt.data).discrepancy_reason == reason
    assert await stored_events(service, ref.NeedFulfilled.event_type) == []


async def test_confirming_a_batch_that_is_not_delivered_is_a_409_with_its_state(
    service: ServiceHandle, seeder: BatchSeeder
) -> None:
    await register(service, JINYINTAN)
    await seed(service, seeder, jinyintan_batch("b-on-road", 200), until="dispatched")
    body = {"quantity_received": 200, "signed_by": "Dr. Zhang"}

    refused = await confirm(service, "b-on-road", json=body)
    assert refused.status_code == 409
    error = error_of(refused)
    assert (error["code"], error["current_state"]) == ("conflict", "in_transit")
    assert error["allowed"] == ["arrived", "delivered", "written-off"]
    assert "'receipt-confirmed' is not allowed" in error["message"]
    unknown = await confirm(service, "b-nowhere", json=body)
    assert unknown.status_code == 404
    assert "batch b-nowhere is not known here" in error_of(unknown)["message"]
    assert await stored_events(service, ev.ReceiptConfirmed.event_type) == []


async def test_only_the_recipients_own_staff_confirm_and_a_replay_confirms_once(
    service: ServiceHandle, seeder: BatchSeeder
) -> None:
    await register(service, JINYINTAN)
    await register(service, HUANGGANG)
    await add_need(service, need_id="jyt-n95", recipient_id="jinyintan-hospital", quantity=300, priority="critical")
    await seed(service, seeder, jinyintan_batch("b-300", 300))
    body = {"quantity_received": 300, "signed_by": "Nurse Chen"}

    stranger = await confirm(service, "b-300", json=body, headers=staff_of(service, "huanggang-health-committee"))
    assert stranger.status_code == 403
    assert "may not act for recipient 'jinyintan-hospital'" in error_of(stranger)["message"]
    assert "current_state" not in error_of(stranger), "a stranger learns nothing about the batch"
    auditor = await confirm(service, "b-300", json=body, role=Role.auditor)
    assert auditor.status_code == 403

    own = {**staff_of(service, "jinyintan-hospital"), "Idempotency-Key": "confirm-b-300"}
    first = await confirm(service, "b-300", json=body, headers=own)
    replay = await confirm(service, "b-300", json=body, headers=own)
    assert first.status_code == replay.status_code == 200, first.text
    assert replay.json() == first.json()
    assert replay.headers["Idempotent-Replay"] == "true"
    assert first.json()["need"]["status"] == "fulfilled"

    (receipt,) = await stored_events(service, ev.ReceiptConfirmed.event_type)
    assert receipt.actor == "recipient_staff:nurse-chen"
    (fulfilled,) = await stored_events(service, ref.NeedFulfilled.event_type)
    assert fulfilled.actor == "recipient_staff:nurse-chen"
    different = await confirm(service, "b-300", json={**body, "quantity_received": 299}, headers=own)
    assert different.status_code == 422
    assert "already used for a different request" in error_of(different)["message"]
    again = await confirm(service, "b-300", json=body, headers=staff_of(service, "jinyintan-hospital"))
    assert again.status_code == 409, "a second confirmation without the key is refused by the fold"
    assert error_of(again)["current_state"] == "confirmed"
    assert (await service.get("/needs/jyt-n95")).json()["received"] == 300


async def test_two_receipts_for_one_need_at_the_same_moment_both_count_and_fulfil_it_once(
    service: ServiceHandle, seeder: BatchSeeder
) -> None:
    await register(service, JINYINTAN)
    await add_need(service, need_id="jyt-n95", recipient_id="jinyintan-hospital", quantity=1000, priority="critical")
    for batch in (jinyintan_batch("b-600", 600), jinyintan_batch("b-400", 400)):
        await seed(service, seeder, batch)

    answers = await asyncio.gather(
        confirm(service, "b-600", json={"quantity_received": 600, "signed_by": "Dr. Zhang"}),
        confirm(service, "b-400", json={"quantity_received": 400, "signed_by": "Nurse Chen"}),
    )
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert (await service.get("/needs/jyt-n95")).json()["received"] == 1000, "neither receipt was lost"
    assert len([a for a in answers if a.json()["need_fulfilled_event_id"]]) == 1
    assert len(await stored_events(service, ref.NeedFulfilled.event_type)) == 1
