"""The dispatch service: shipment lists, and rebuilding its directory by replaying the reference topic."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from services.dispatch.tables import recipients, sites
from shared.events import reference_events as ref
from shared.messaging.consumer import ConsumerStats
from shared.messaging.positions import forget_consumer
from tests.harness import ServiceHandle, wait_until
from tests.integration.dispatch.support import DIRECT, HUB, TONGJI, TONGJI_SITE, VIA_HUB, Dispatch, consumer_applied

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
    await wait_until(lambda: consumer_applied(consumer, 8), what="the second registration of the hub to be applied")
    before = await _reference_snapshot(dispatch.service)
    assert len(before[0]) == 5 and len(before[1]) == 2

    await consumer.stop()
    consumer.stats = ConsumerStats()
    async with dispatch.service.runtime.database.transaction() as conn:
        await conn.execute(sites.delete())
        await conn.execute(recipients.delete())
        await forget_consumer(conn, consumer.name)
    await consumer.start()
    await wait_until(lambda: consumer_applied(consumer, 8), what="the replay to reach the end of the reference topic")
    assert await _reference_snapshot(dispatch.service) == before


async def _reference_snapshot(service: ServiceHandle) -> tuple[list[Any], list[Any]]:
    async with service.runtime.database.read() as conn:
        site_rows = (await conn.execute(sa.select(sites).order_by(sites.c.site_id))).all()
        recipient_rows = (await conn.execute(sa.select(recipients).order_by(recipients.c.recipient_id))).all()
    return [tuple(row) for row in site_rows], [tuple(row) for row in recipient_rows]
