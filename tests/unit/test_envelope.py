"""The envelope survives a round trip through Kafka headers, and the CloudEvents SDK reads our records."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cloudevents.v1.kafka import KafkaMessage, from_binary

from shared.events.envelope import (
    GENESIS_HASH,
    Envelope,
    EnvelopeError,
    encode_data,
    from_record,
    new_event_id,
    to_headers,
)


def sample_envelope() -> Envelope:
    return Envelope(
        type="org.aidtrail.batch.pledged.v1",
        source="pledge",
        subject="xiaomi-2020-01-1",
        data={"pledge_id": "xiaomi-2020-01", "quantity": 20000, "note": "口罩 N95"},
        actor="donor:liu.guojun",
        correlation_id="corr-1",
        causation_id="cause-1",
        time=datetime(2020, 1, 23, 8, 30, 0, 123456, tzinfo=UTC),
    ).chained(7, GENESIS_HASH)


def test_round_trip_through_kafka_headers_keeps_every_attribute() -> None:
    original = sample_envelope()
    decoded = from_record(to_headers(original), encode_data(original))
    assert decoded == original
    assert decoded.content_hash() == original.content_hash()


def test_cloudevents_sdk_reads_our_binary_records() -> None:
    original = sample_envelope()
    message = KafkaMessage(headers=dict(to_headers(original)), key=original.subject, value=encode_data(original))
    event = from_binary(message)
    assert event["specversion"] == "1.0"
    assert event["id"] == original.id
    assert event["type"] == original.type
    assert event["source"] == "pledge"
    assert event["subject"] == original.subject
    assert event["actor"] == "donor:liu.guojun"
    assert event["correlationid"] == "corr-1"
    assert event["causationid"] == "cause-1"
    assert event["datacontenttype"] == "application/json"
    assert event.data == original.data


def test_event_ids_are_uuid7_and_sort_by_creation() -> None:
    first, second = new_event_id(), new_event_id()
    assert first[14] == "7" and second[14] == "7"
    assert first < second


def test_changing_any_audited_attribute_changes_the_hash() -> None:
    original = sample_envelope()
    variant = Envelope(
        type=original.type,
        source=original.source,
        subject=original.subject,
        data={**original.data, "quantity": 19000},
        actor=original.actor,
        correlation_id=original.correlation_id,
        causation_id=original.causation_id,
        id=original.id,
        time=original.time,
        sequence=original.sequence,
        prev_hash=original.prev_hash,
    )
    assert variant.content_hash() != original.content_hash()


@pytest.mark.parametrize(
    ("headers", "value", "reason"),
    [
        ([], b"{}", "missing CloudEvents header"),
        ([("ce_specversion", b"0.3")], b"{}", "missing CloudEvents header"),
        (None, b"not json", "not valid JSON"),
        (None, b"[1, 2]", "expected an object"),
        (None, None, "no value"),
    ],
)
def test_unreadable_records_are_refused_with_a_reason(
    headers: list[tuple[str, bytes]] | None, value: bytes | None, reason: str
) -> None:
    valid_headers = to_headers(sample_envelope())
    with pytest.raises(EnvelopeError, match=reason):
        from_record(valid_headers if headers is None else headers, value)


def test_a_wrong_spec_version_is_refused() -> None:
    headers = [(n, b"0.3" if n == "ce_specversion" else v) for n, v in to_headers(sample_envelope())]
    with pytest.raises(EnvelopeError, match="unsupported ce_specversion"):
        from_record(headers, b"{}")


def test_a_time_without_zone_is_refused() -> None:
    headers = [(n, b"2020-01-23T08:30:00" if n == "ce_time" else v) for n, v in to_headers(sample_envelope())]
    with pytest.raises(EnvelopeError, match="no time zone"):
        from_record(headers, b"{}")
