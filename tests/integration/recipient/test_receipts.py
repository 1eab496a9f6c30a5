"""The recipient service: what is coming to a recipient, and confirming its receipt against the need."""

from __future__ import annotations

import asyncio

from shared.events import batch_events as ev
from shared.events import reference_events as ref
from shared.web.auth import Role
from tests.harness import ServiceHandle, wait_until
from tests.integration.recipient.support import (
    HUANGGANG,
    JINYINTAN,
    Batch,
    BatchSeeder,
    add_need,
    all_published,
    confirm,
    error_of,
    read_to_end,
    register,
    seed,
    staff_of,
    stored_events,
)

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
