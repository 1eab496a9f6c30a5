"""What the recipient service's suites (and the scoping suite) share: two recipients, batches seeded onto the
batch topic as real CloudEvents, and small HTTP and database helpers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.domain.batch_fold import short_name
from shared.events import batch_events as ev
from shared.events.envelope import Envelope, encode_data, from_record, new_event_id, to_headers
from shared.events.registry import payload_data
from shared.settings import Settings
from shared.store.schema import events, outbox
from shared.web.auth import Role
from tests.harness import ServiceHandle, wait_until

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
