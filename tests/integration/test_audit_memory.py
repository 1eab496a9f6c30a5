"""SLOW (about a minute): a replay's memory does not grow with the number of events.

Two logs with the same 100 batches, one of 20,000 events and one of 200,000 (ten times as many hub handovers
per batch), are each replayed in a fresh subprocess (`python -m services.audit.measure`), which reports its
peak resident memory (ru_maxrss). The peak at 200k must be within 20% of the peak at 20k. The logs are
produced once per session with batched, un-awaited sends.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from services.audit.craft import CraftedLog, create_topics, publish_records
from services.audit.scenario import DONOR, HOSPITAL, HOSPITAL_SITE, WAREHOUSE
from shared.messaging.kafka_config import connection_options
from shared.settings import Settings
from tests.harness import new_topic_prefix

BATCHES = 100
HUBS = ("hub-xiantao", "hub-xiaogan", "hub-jingzhou", "hub-yichang")
CHUNK = 20_000
T0 = datetime(2020, 2, 1, tzinfo=UTC)
B = "org.aidtrail.batch."


@dataclass(frozen=True)
class Measured:
    events: int
    peak_rss_mib: float
    events_per_second: float
    ok: bool


def batch_story(batch: str, cycles: int) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(source, type, data) of one batch: 8 lifecycle events plus 3 per hub handover cycle."""
    yield (
        "pledge",
        B + "pledged.v1",
        {
            "pledge_id": f"pl-{batch}",
            "donor_id": DONOR,
            "line_no": 1,
            "item": "n95-mask",
            "quantity": 1000,
            "unit": "piece",
            "warehouse_id": WAREHOUSE,
        },
    )
    yield "warehouse", B + "received.v2", {"site_id": WAREHOUSE, "quantity_received": 1000}
    yield (
        "warehouse",
        B + "inspected.v1",
        {"inspector": "qc", "standard_checked": "N95", "accepted": 1000, "rejected": 0, "quarantined": 0},
    )
    yield (
        "warehouse",
        B + "allocated.v1",
        {"allocation_id": f"al-{batch}", "need_id": "need-1", "recipient_id": HOSPITAL, "quantity": 1000},
    )
    yield "warehouse", B + "picked.v1", {"allocation_id": f"al-{batch}", "quantity": 1000, "picker": "p"}
    yield (
        "dispatch",
        B + "dispatched.v1",
        {
            "shipment_id": f"sh-{batch}",
            "leg_no": 1,
            "from_site_id": WAREHOUSE,
            "to_site_id": HUBS[0],
            "carrier": "carrier-0",
            "quantity": 1000,
        },
    )
    for cycle in range(cycles):
        hub, onward = HUBS[cycle % len(HUBS)], HUBS[(cycle + 1) % len(HUBS)]
        before, after = f"carrier-{cycle % 2}", f"carrier-{(cycle + 1) % 2}"
        shipment = {"shipment_id": f"sh-{batch}", "hub_site_id": hub}
        yield "dispatch", B + "arrived.v1", {**shipment, "leg_no": 1}
        yield "dispatch", B + "handed-over.v1", {**shipment, "from_carrier": before, "to_carrier": after}
        to_site = HOSPITAL_SITE if cycle == cycles - 1 else onward
        yield "dispatch", B + "departed.v1", {**shipment, "leg_no": 2, "to_site_id": to_site, "carrier": after}
    yield (
        "dispatch",
        B + "delivered.v1",
        {"shipment_id": f"sh-{batch}", "site_id": HOSPITAL_SITE, "recipient_id": HOSPITAL, "quantity": 1000},
    )
    yield (
        "recipient",
        B + "receipt-confirmed.v1",
        {"recipient_id": HOSPITAL, "quantity_received": 1000, "signed_by": "nurse"},
    )


async def write_log(settings: Settings, events_per_batch: int) -> int:
    """Interleave the batches' stories in time, as a busy day would; publish in chunks to bound our memory."""
    cycles = (events_per_batch - 8) // 3
    log = CraftedLog(settings, clock=T0, step=timedelta(milliseconds=1))
    stories = [batch_story(f"b-{i:03d}", cycles) for i in range(BATCHES)]
    await create_topics(settings)
    sent = 0
    for _ in range(8 + 3 * cycles):
        for index, story in enumerate(stories):
            source, event_type, data = next(story)
            log.emit_data(source, f"b-{index:03d}", event_type, data)
        if len(log.records) >= CHUNK:
            sent += await publish_records(settings, log.records)
            log.records.clear()
    return sent + await publish_records(settings, log.records)


def measure(settings: Settings) -> Measured:
    command = [
        sys.executable,
        "-m",
        "services.audit.measure",
        "--topic-prefix",
        settings.topic_prefix,
        "--bootstrap",
        settings.kafka_bootstrap,
    ]
    completed = subprocess.run(command, capture_output=True, check=True, timeout=240)
    data = orjson.loads(completed.stdout)
    return Measured(data["records"], data["peak_rss_mib"], data["events_per_second"], data["ok"])


@pytest.fixture(scope="session")
async def memory_logs(kafka_bootstrap: str) -> AsyncIterator[dict[int, Settings]]:
    """Produced once per session: 20k and 200k events over the same 100 batches; deleted afterwards, because
    at about 150 MB they would weigh on the shared broker."""
    logs: dict[int, Settings] = {}
    try:
        for total in (20_000, 200_000):
            settings = Settings(topic_prefix=new_topic_prefix(), kafka_bootstrap=kafka_bootstrap)
            logs[total] = settings
            assert await write_log(settings, total // BATCHES) == total
        yield logs
    finally:
        await delete_topics(list(logs.values()))


async def delete_topics(logs: list[Settings]) -> None:
    if not logs:
        return
    admin = AIOKafkaAdminClient(**connection_options(logs[0]), request_timeout_ms=60_000)
    await admin.start()
    try:
        names = [name for s in logs for name in (s.batch_topic, s.reference_topic, s.dead_letter_topic)]
        await admin.delete_topics(names)
    finally:
        await admin.close()


@pytest.mark.kafka
def test_replay_memory_is_flat_from_20k_to_200k_events(memory_logs: dict[int, Settings]) -> None:
    small, large = measure(memory_logs[20_000]), measure(memory_logs[200_000])
    print(f"\n20k: {small}\n200k: {large}")
    assert (small.events, large.events) == (20_000, 200_000)
    assert small.ok and large.ok
    assert large.peak_rss_mib <= small.peak_rss_mib * 1.2, (small, large)
