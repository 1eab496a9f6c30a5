"""Message examples for the AsyncAPI document, built from the golden sample events the tests keep.

Each golden sample is validated by its own model and re-serialised the way a service publishes it
(`payload_data`), so an example is always a payload the services would really write. The headers are fixed,
deterministic values (no clock, no random ids), so regenerating the document gives byte-identical output.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from shared.events.envelope import CONTENT_TYPE, GENESIS_HASH, SPEC_VERSION
from shared.events.registry import BATCH_EVENT_TYPES, PAYLOAD_BY_TYPE, payload_data
from shared.settings import REPO_ROOT

GOLDEN_DIR = REPO_ROOT / "tests" / "data" / "golden"
EXAMPLE_BATCH_ID = "xiaomi-2020-01-1"
EXAMPLE_TIME = "2020-02-01T08:00:00.000000Z"
EXAMPLE_ACTORS = {
    "pledge": "donor:xiaomi",
    "warehouse": "operator:li.wei",
    "dispatch": "dispatcher:zhang.min",
    "recipient": "recipient_staff:dr.wang",
}

# Which service writes which event type: the ownership table of DESIGN.md, per type. A unit test requires an
# entry for every registered type, so a new type cannot be published without saying who writes it.
PUBLISHERS: dict[str, tuple[str, ...]] = {
    "org.aidtrail.batch.pledged.v1": ("pledge",),
    "org.aidtrail.batch.amended.v1": ("pledge",),
    "org.aidtrail.batch.cancelled.v1": ("pledge",),
    "org.aidtrail.batch.received.v1": ("warehouse",),
    "org.aidtrail.batch.received.v2": ("warehouse",),
    "org.aidtrail.batch.inspected.v1": ("warehouse",),
    "org.aidtrail.batch.quarantine-resolved.v1": ("warehouse",),
    "org.aidtrail.batch.redesignated.v1": ("warehouse",),
    "org.aidtrail.batch.allocated.v1": ("warehouse",),
    "org.aidtrail.batch.split.v1": ("warehouse",),
    "org.aidtrail.batch.split-created.v1": ("warehouse",),
    "org.aidtrail.batch.picked.v1": ("warehouse",),
    "org.aidtrail.batch.written-off.v1": ("warehouse", "dispatch"),
    "org.aidtrail.batch.dispatched.v1": ("dispatch",),
    "org.aidtrail.batch.arrived.v1": ("dispatch",),
    "org.aidtrail.batch.handed-over.v1": ("dispatch",),
    "org.aidtrail.batch.departed.v1": ("dispatch",),
    "org.aidtrail.batch.delivered.v1": ("dispatch",),
    "org.aidtrail.batch.receipt-confirmed.v1": ("recipient",),
    "org.aidtrail.donor.registered.v1": ("pledge",),
    "org.aidtrail.pledge.registered.v1": ("pledge",),
    "org.aidtrail.site.registered.v1": ("warehouse", "recipient", "dispatch"),
    "org.aidtrail.recipient.registered.v1": ("recipient",),
    "org.aidtrail.need.registered.v1": ("recipient",),
    "org.aidtrail.need.fulfilled.v1": ("recipient",),
    "org.aidtrail.shipment.planned.v1": ("dispatch",),
}


class ExampleError(ValueError):
    """A golden sample that cannot serve as an example: the document must not show an invalid event."""


def load_golden(directory: Path = GOLDEN_DIR) -> dict[str, dict[str, Any]]:
    """Golden payloads by event type, each validated by its model and dumped as a service would publish it.

    Returns an empty mapping when the directory is absent (an install without the tests): the contract is then
    served without examples rather than not at all.
    """
    samples: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        sample = json.loads(path.read_text(encoding="utf-8"))
        event_type = sample["type"]
        model = PAYLOAD_BY_TYPE.get(event_type)
        if model is None:
            raise ExampleError(f"{path.name}: {event_type!r} is not a registered event type")
        samples[event_type] = payload_data(model.model_validate(sample["data"]))
    return samples


def example_event_id(event_type: str) -> str:
    """A fixed id with the shape of a UUIDv7, derived from the type so the document is reproducible."""
    digits = hashlib.sha256(event_type.encode()).hexdigest()
    variant = "89ab"[int(digits[16], 16) % 4]
    return f"01700000-0000-7{digits[:3]}-{variant}{digits[3:6]}-{digits[6:18]}"


def example_subject(event_type: str, payload: dict[str, Any]) -> str:
    """The record key: a batch id on the batch topic; on the reference topic the entity's id, which every
    reference payload declares as its first `*_id` field."""
    if event_type in BATCH_EVENT_TYPES:
        return EXAMPLE_BATCH_ID
    for name, value in payload.items():
        if name.endswith("_id") and isinstance(value, str):
            return value
    raise ExampleError(f"{event_type}: no *_id field to use as the record key")


def example_headers(event_type: str, payload: dict[str, Any]) -> dict[str, str]:
    source = PUBLISHERS[event_type][0]
    return {
        "ce_specversion": SPEC_VERSION,
        "ce_id": example_event_id(event_type),
        "ce_type": event_type,
        "ce_source": source,
        "ce_subject": example_subject(event_type, payload),
        "ce_time": EXAMPLE_TIME,
        "content-type": CONTENT_TYPE,
        "ce_actor": EXAMPLE_ACTORS[source],
        "ce_correlationid": example_event_id("correlation"),
        "ce_sequence": "1",
        "ce_prevhash": GENESIS_HASH,
    }


def message_examples(event_type: str, golden: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    payload = golden.get(event_type)
    if payload is None:
        return []
    return [
        {
            "name": "golden",
            "summary": f"The golden sample of {event_type} kept in tests/data/golden.",
            "headers": example_headers(event_type, payload),
            "payload": payload,
        }
    ]
