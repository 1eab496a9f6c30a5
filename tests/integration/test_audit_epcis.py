"""The EPCIS 2.0 export of a crafted lifecycle, read back from the real broker, is structurally valid
(rules: tests/unit/test_audit_epcis.py)."""

from __future__ import annotations

import io

import orjson
import pytest

from services.audit.craft import CraftedLog
from services.audit.epcis import export_epcis
from services.audit.replay import AuditOptions
from services.audit.scenario import clean_lifecycle
from shared.settings import Settings
from tests.unit.test_audit_epcis import validate_document

pytestmark = pytest.mark.kafka


async def test_epcis_export_of_a_lifecycle_is_structurally_valid(kafka_bootstrap: str, topic_prefix: str) -> None:
    log = CraftedLog(Settings(topic_prefix=topic_prefix, kafka_bootstrap=kafka_bootstrap))
    life = clean_lifecycle(log)  # pledge, receipt, inspection, split, shipment via a hub, delivery, confirmation
    await log.publish()
    buffer = io.BytesIO()
    result, count = await export_epcis(log.settings, buffer, AuditOptions(now=log.clock))
    doc = orjson.loads(buffer.getvalue())
    assert validate_document(doc) == []
    events = doc["epcisBody"]["eventList"]
    assert len(events) == count and result.ok
    steps = {event.get("bizStep") for event in events}
    assert {"receiving", "inspecting", "picking", "departing", "arriving", "accepting"} <= steps
    assert [e["type"] for e in events].count("TransformationEvent") == 1
    traced = {event["aidtrail:eventId"] for event in events}
    assert {life.id("pledged"), life.id("split"), life.id("confirmed")} <= traced
