"""What the dispatch suites share: the world they seed (sites, recipients, picked batches) and a client of it."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.dispatch.tables import recipients, sites
from shared.events import batch_events as ev
from shared.events import reference_events as ref
from shared.events.envelope import Envelope, encode_data, from_record, to_headers
from shared.events.registry import payload_data
from shared.messaging.consumer import ProjectionConsumer
from shared.settings import Settings
from shared.web.auth import Role
from tests.harness import ServiceHandle, wait_until

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


async def consumer_applied(consumer: ProjectionConsumer, count: int) -> bool:
    return consumer.stats.applied >= count and not any(consumer.stats.lag.values())
