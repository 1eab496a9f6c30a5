"""The CloudEvents 1.0 Kafka binary-mode headers every aidtrail event carries, as one AsyncAPI headers schema.

The names and rules mirror `shared.events.envelope` (which writes and reads them); the unit tests check every
header `to_headers` writes against this schema, so the two cannot disagree unnoticed.
"""

from __future__ import annotations

from typing import Any

from shared.events.envelope import CONTENT_TYPE, GENESIS_HASH, SPEC_VERSION

HEADERS_SCHEMA_NAME = "CloudEventsKafkaHeaders"
UUID7_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
EVENT_TYPE_PATTERN = r"^org\.aidtrail\.[a-z]+(\.[a-z-]+)+\.v[0-9]+$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
RFC3339_UTC_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"


def _text(description: str, **rules: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **rules}


HEADER_PROPERTIES: dict[str, dict[str, Any]] = {
    "ce_specversion": _text("CloudEvents spec version.", const=SPEC_VERSION),
    "ce_id": _text(
        "Event id, a UUIDv7 (sorts by creation time). Unique per event: delivery is at-least-once, so a "
        "consumer drops a record whose ce_id it has already processed.",
        pattern=UUID7_PATTERN,
    ),
    "ce_type": _text(
        "Versioned event type, e.g. org.aidtrail.batch.pledged.v1; picks the payload schema. Older versions "
        "stay on the log and are read through upcasters.",
        pattern=EVENT_TYPE_PATTERN,
    ),
    "ce_source": _text("The service that wrote the event: pledge, warehouse, dispatch or recipient."),
    "ce_subject": _text(
        "What the event is about, and the Kafka record key: the batch id on the batch topic, the entity id "
        "(donor, pledge, site, recipient, need, shipment) on the reference topic."
    ),
    "ce_time": _text("When it happened, RFC 3339 in UTC with microseconds.", pattern=RFC3339_UTC_PATTERN),
    "content-type": _text("Media type of the record value.", const=CONTENT_TYPE),
    "ce_actor": _text("Who did it, as role:subject from the bearer token, e.g. operator:li.wei."),
    "ce_correlationid": _text("Id shared by every event one request or scenario caused (X-Correlation-ID)."),
    "ce_causationid": _text("Id of the event or command that caused this one, when there is one."),
    "ce_sequence": _text(
        "Position of the event in its source service's hash chain (1, 2, 3 ...; decimal text).",
        pattern=r"^[1-9][0-9]*$",
    ),
    "ce_prevhash": _text(
        f"SHA-256 (hex) of the previous event in the source's chain; {GENESIS_HASH[:8]}... for the first one. "
        "An auditor recomputes the chain to prove nothing was altered or removed.",
        pattern=SHA256_PATTERN,
    ),
}

REQUIRED_HEADERS = [
    "ce_specversion",
    "ce_id",
    "ce_type",
    "ce_source",
    "ce_subject",
    "ce_time",
    "content-type",
    "ce_actor",
    "ce_correlationid",
]


def headers_schema() -> dict[str, Any]:
    """Kafka headers are bytes; every aidtrail header is UTF-8 text, so each is described as a string."""
    return {
        "type": "object",
        "title": "CloudEvents 1.0 headers (Kafka binary mode)",
        "description": (
            "Every CloudEvents attribute travels as a Kafka record header with the ce_ prefix; the record value "
            "is the JSON payload. actor, correlationid, causationid, sequence and prevhash are aidtrail's "
            "CloudEvents extensions for the audit."
        ),
        "properties": HEADER_PROPERTIES,
        "required": REQUIRED_HEADERS,
    }
