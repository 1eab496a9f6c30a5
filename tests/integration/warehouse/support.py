"""What the warehouse suites (and the pledge-to-warehouse suite) share: events seeded onto the topics, and
small HTTP and database helpers.
"""

from __future__ import annotations

from typing import Any

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
from tests.harness import ServiceHandle, wait_until

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
