"""Every event type and version stays readable: golden samples, and the upcaster from old to new."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.events import batch_events as ev
from shared.events.registry import PAYLOAD_BY_TYPE, InvalidPayload, UnknownEventType, parse_payload, upcast

GOLDEN = Path(__file__).resolve().parent.parent / "data" / "golden"
RECEIVED_V1 = {"site": "WH Wuhan 1", "quantity": 950, "shortfall": 50}


def golden_samples() -> list[Path]:
    return sorted(GOLDEN.glob("*.json"))


def test_every_registered_event_type_has_a_golden_sample() -> None:
    sampled = {path.stem for path in golden_samples()}
    assert set(PAYLOAD_BY_TYPE) <= sampled, f"add golden samples for {set(PAYLOAD_BY_TYPE) - sampled}"


@pytest.mark.parametrize("path", golden_samples(), ids=lambda p: p.stem)
def test_golden_sample_is_still_readable(path: Path) -> None:
    sample = json.loads(path.read_text())
    payload = parse_payload(sample["type"], sample["data"])
    assert payload.event_type.rsplit(".", 1)[0] == sample["type"].rsplit(".", 1)[0]


def test_received_v1_is_upcast_to_v2() -> None:
    newest_type, data = upcast("org.aidtrail.batch.received.v1", RECEIVED_V1)
    assert newest_type == ev.BatchReceived.event_type
    assert data["site_id"] == "wh-wuhan-1"
    payload = parse_payload("org.aidtrail.batch.received.v1", RECEIVED_V1)
    assert isinstance(payload, ev.BatchReceived)
    assert (payload.site_id, payload.quantity_received, payload.shortfall) == ("wh-wuhan-1", 950, 50)
    assert payload.condition is ev.Condition.UNKNOWN
    assert payload.shortfall_reason


def test_a_malformed_old_event_is_refused_before_upcasting() -> None:
    with pytest.raises(InvalidPayload, match="quantity"):
        parse_payload("org.aidtrail.batch.received.v1", {"site": "WH 1", "quantity": -5})


def test_unknown_types_and_unknown_fields_are_refused() -> None:
    with pytest.raises(UnknownEventType, match="unknown event type"):
        parse_payload("org.aidtrail.batch.teleported.v1", {})
    sample = json.loads((GOLDEN / "org.aidtrail.batch.pledged.v1.json").read_text())
    with pytest.raises(InvalidPayload, match=r"[Ee]xtra"):
        parse_payload(sample["type"], {**sample["data"], "surprise": 1})
