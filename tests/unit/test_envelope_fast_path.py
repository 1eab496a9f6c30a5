"""The replay's fast decoding path gives exactly what the plain one gives: same envelope, same hash, same errors."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from services.audit.records import decode
from shared.events.envelope import (
    Envelope,
    EnvelopeError,
    encode_data,
    from_record,
    from_record_hashed,
    to_headers,
)
from tests.unit.test_envelope import sample_envelope

# Times as some writer could stamp them: only the first is the canonical text the hash is computed over.
TIMES = [
    b"2020-01-23T08:30:00.123456Z",
    b"2020-01-23T16:30:00.123456+08:00",
    b"2020-01-23T08:30:00Z",
    b"2020-01-23T08:30:00.123Z",
    b"2020-01-23 08:30:00.123456Z",
    b"2020-W04-4T08:30:00.123456Z",
    b"2020-01-23T08:30:00,123456Z",
]


def _with(headers: list[tuple[str, bytes]], name: str, value: bytes | None) -> list[tuple[str, bytes]]:
    return [(n, value if n == name else v) for n, v in headers]  # type: ignore[misc]


@pytest.mark.parametrize("stamp", TIMES)
def test_the_hash_over_the_header_text_is_the_hash_over_the_parsed_time(stamp: bytes) -> None:
    headers = _with(to_headers(sample_envelope()), "ce_time", stamp)
    try:
        plain = from_record(headers, encode_data(sample_envelope()))
    except EnvelopeError:
        with pytest.raises(EnvelopeError):
            from_record_hashed(headers, encode_data(sample_envelope()))
        return
    envelope, content_hash = from_record_hashed(headers, encode_data(sample_envelope()))
    assert envelope == plain
    assert content_hash == plain.content_hash()


def test_the_built_envelope_is_an_ordinary_envelope() -> None:
    original = sample_envelope()
    decoded = from_record(to_headers(original), encode_data(original))
    assert type(decoded) is Envelope
    assert decoded == original and hash(decoded.id) == hash(original.id)
    assert repr(decoded) == repr(original)


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("ce_type", None, "missing CloudEvents header"),
        ("ce_type", b"", "missing CloudEvents header"),
        ("ce_actor", b"\xff\xfe", "header ce_actor is not UTF-8"),
        ("ce_sequence", b"-1", "is not a non-negative integer"),
        ("ce_time", b"yesterday", "not an RFC 3339 timestamp"),
    ],
)
def test_odd_headers_are_refused_as_before(name: str, value: bytes | None, reason: str) -> None:
    headers = _with(to_headers(sample_envelope()), name, value)
    for read in (from_record, from_record_hashed):
        with pytest.raises(EnvelopeError, match=reason):
            read(headers, b"{}")


def test_the_first_fault_is_named_time_before_sequence_before_payload() -> None:
    headers = _with(_with(to_headers(sample_envelope()), "ce_time", b"later"), "ce_sequence", b"x")
    with pytest.raises(EnvelopeError, match="ce_time"):
        from_record_hashed(headers, b"[]")
    with pytest.raises(EnvelopeError, match="ce_sequence"):
        from_record_hashed(_with(to_headers(sample_envelope()), "ce_sequence", b"x"), b"[]")


def test_the_auditor_record_carries_the_envelope_and_its_hash() -> None:
    original = sample_envelope()
    raw = SimpleNamespace(
        topic="t",
        partition=1,
        offset=5,
        timestamp=9,
        key=b"k",
        headers=tuple(to_headers(original)),
        value=encode_data(original),
    )
    record = decode(raw)
    assert record.envelope == original and record.content_hash == original.content_hash()
    assert (record.topic, record.partition, record.offset, record.timestamp_ms, record.key) == ("t", 1, 5, 9, "k")
    unreadable = decode(SimpleNamespace(**{**vars(raw), "value": b"nope"}))
    assert unreadable.envelope is None and unreadable.content_hash is None
    assert unreadable.error is not None and "not valid JSON" in unreadable.error
