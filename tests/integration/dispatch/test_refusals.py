"""The dispatch service: invalid plans, out-of-order movements, replayed requests and access, refused."""

from __future__ import annotations

import asyncio
from typing import Any

from shared.web.auth import Role
from tests.integration.dispatch.support import (
    DIRECT,
    HUB,
    JINYINTAN,
    OTHER_WAREHOUSE,
    TO_PICKED,
    TONGJI,
    TONGJI_SITE,
    VIA_HUB,
    WAREHOUSE,
    Dispatch,
    error_of,
)

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
