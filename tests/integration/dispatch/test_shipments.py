"""The dispatch service: a shipment through a relay hub with a handover, and losses in transit."""

from __future__ import annotations

from shared.events import reference_events as ref
from tests.harness import wait_until
from tests.integration.dispatch.support import (
    DIRECT,
    HUB,
    JINYINTAN,
    JINYINTAN_SITE,
    TO_PICKED,
    VIA_HUB,
    WAREHOUSE,
    Dispatch,
    consumer_applied,
    error_of,
    read_topic,
)

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
    await wait_until(lambda: consumer_applied(batches, 20), what="dispatch to consume its own events back from Kafka")
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
