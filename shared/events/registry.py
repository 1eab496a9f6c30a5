"""Versioned event types: which pydantic model reads which `ce_type`, and how old versions are upcast.

Upcasting happens when an event is read, never by rewriting the log: the record stays as it was written, which
is what makes the hash chain verifiable years later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from shared.events.batch_events import BATCH_PAYLOADS, BatchReceived, BatchReceivedV1, Payload
from shared.events.envelope import Envelope
from shared.events.reference_events import REFERENCE_PAYLOADS

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

PAYLOAD_BY_TYPE: dict[str, type[Payload]] = {model.event_type: model for model in BATCH_PAYLOADS + REFERENCE_PAYLOADS}
BATCH_EVENT_TYPES = frozenset(model.event_type for model in BATCH_PAYLOADS)


class UnknownEventType(LookupError):
    """No model reads this ce_type; the dead-letter path reports it instead of guessing."""


class InvalidPayload(ValueError):
    """The payload breaks its model's rules."""


def slugify_site(name: str) -> str:
    return "-".join(name.lower().split())


def upcast_received_v1(data: dict[str, Any]) -> dict[str, Any]:
    """v1 receipts named the site in free text and had no lot, expiry or condition."""
    return {
        "site_id": slugify_site(data["site"]),
        "quantity_received": data["quantity"],
        "shortfall": data.get("shortfall", 0),
        "shortfall_reason": "recorded before shortfall reasons were required" if data.get("shortfall") else None,
        "condition": "unknown",
    }


UPCASTERS: dict[str, tuple[str, Upcaster]] = {
    BatchReceivedV1.event_type: (BatchReceived.event_type, upcast_received_v1),
}


def upcast(event_type: str, data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Apply upcasters until the newest version; each step is validated by the older model first."""
    while event_type in UPCASTERS:
        PAYLOAD_BY_TYPE[event_type].model_validate(data)
        event_type, step = UPCASTERS[event_type]
        data = step(data)
    return event_type, data


def parse_payload(event_type: str, data: dict[str, Any]) -> Payload:
    """Read a payload in its newest version."""
    if event_type not in PAYLOAD_BY_TYPE:
        raise UnknownEventType(f"unknown event type {event_type!r}; known types: {sorted(PAYLOAD_BY_TYPE)}")
    try:
        newest_type, newest_data = upcast(event_type, data)
        return PAYLOAD_BY_TYPE[newest_type].model_validate(newest_data)
    except ValidationError as exc:
        raise InvalidPayload(f"{event_type} payload is invalid: {_summarise(exc)}") from exc


def parse_envelope(envelope: Envelope) -> Payload:
    return parse_payload(envelope.type, envelope.data)


def payload_data(payload: Payload) -> dict[str, Any]:
    return payload.model_dump(mode="json", exclude_none=False)


def _summarise(exc: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in err['loc']) or 'payload'}: {err['msg']}" for err in exc.errors()[:5]]
    return "; ".join(parts)
