"""The CloudEvents 1.0 envelope every aidtrail event travels in, in Kafka binary mode.

The payload is the Kafka record value (JSON); every envelope attribute is a `ce_` header. We encode by hand
rather than through the cloudevents SDK because this runs once per event on the replay hot path; the unit tests
decode our records with the SDK to prove the two agree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

import orjson
import uuid6

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
GENESIS_HASH = "0" * 64

# Header names in Kafka binary mode: every CloudEvents attribute, extensions included, gets the ce_ prefix.
_REQUIRED_HEADERS = ("ce_id", "ce_type", "ce_source", "ce_specversion", "ce_time", "ce_subject", "ce_actor")


class EnvelopeError(ValueError):
    """A record that cannot be read as an aidtrail CloudEvent; the dead-letter path reports this reason."""


def new_event_id() -> str:
    """UUIDv7, so ids sort by creation time and index well."""
    return str(uuid6.uuid7())


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Envelope:
    """One event with its audit context. `data` is the JSON payload as plain values (already upcast or not)."""

    type: str
    source: str
    subject: str
    data: dict[str, Any]
    actor: str
    correlation_id: str
    causation_id: str | None = None
    id: str = field(default_factory=new_event_id)
    time: datetime = field(default_factory=utc_now)
    sequence: int | None = None
    prev_hash: str | None = None

    def chained(self, sequence: int, prev_hash: str) -> Envelope:
        return replace(self, sequence=sequence, prev_hash=prev_hash)

    def content_hash(self) -> str:
        """Hash over every attribute the audit relies on, so changing any of them breaks the chain."""
        return hashlib.sha256(canonical_bytes(self)).hexdigest()


def canonical_bytes(envelope: Envelope, time_text: str | None = None) -> bytes:
    """`time_text`: the event time already in canonical text (see `_canonical_time`), so it is not formatted again."""
    body = {
        "id": envelope.id,
        "type": envelope.type,
        "source": envelope.source,
        "subject": envelope.subject,
        "time": time_text if time_text is not None else format_time(envelope.time),
        "actor": envelope.actor,
        "correlationid": envelope.correlation_id,
        "causationid": envelope.causation_id,
        "sequence": envelope.sequence,
        "prevhash": envelope.prev_hash,
        "data": envelope.data,
    }
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise EnvelopeError(f"ce_time {text!r} is not an RFC 3339 timestamp") from exc
    if moment.tzinfo is None:
        raise EnvelopeError(f"ce_time {text!r} has no time zone")
    return moment


def encode_data(envelope: Envelope) -> bytes:
    return orjson.dumps(envelope.data)


def to_headers(envelope: Envelope) -> list[tuple[str, bytes]]:
    headers = [
        ("ce_specversion", SPEC_VERSION),
        ("ce_id", envelope.id),
        ("ce_type", envelope.type),
        ("ce_source", envelope.source),
        ("ce_subject", envelope.subject),
        ("ce_time", format_time(envelope.time)),
        ("content-type", CONTENT_TYPE),
        ("ce_actor", envelope.actor),
        ("ce_correlationid", envelope.correlation_id),
    ]
    if envelope.causation_id:
        headers.append(("ce_causationid", envelope.causation_id))
    if envelope.sequence is not None:
        headers.append(("ce_sequence", str(envelope.sequence)))
    if envelope.prev_hash is not None:
        headers.append(("ce_prevhash", envelope.prev_hash))
    return [(name, value.encode()) for name, value in headers]


def from_record(headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...], value: bytes | None) -> Envelope:
    """Decode a Kafka record; raise EnvelopeError naming the first thing that is wrong."""
    return _read(headers, value)[0]


def from_record_hashed(
    headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...], value: bytes | None
) -> tuple[Envelope, str]:
    """`from_record` and the event's `content_hash()` in one go, for the auditor's replay: the hash reuses the
    `ce_time` text as written when it is already the canonical form, instead of formatting the parsed time."""
    envelope, time_text = _read(headers, value)
    return envelope, hashlib.sha256(canonical_bytes(envelope, _canonical_time(time_text))).hexdigest()


def _read(
    headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...], value: bytes | None
) -> tuple[Envelope, str]:
    """The envelope and its `ce_time` text. Checked in the order the errors have always come in: headers, spec
    version, time, sequence, payload."""
    found = _decode_headers(headers)
    if not all(found.get(name) for name in _REQUIRED_HEADERS):
        missing = [name for name in _REQUIRED_HEADERS if not found.get(name)]
        raise EnvelopeError(f"missing CloudEvents header(s): {', '.join(missing)}")
    if found["ce_specversion"] != SPEC_VERSION:
        raise EnvelopeError(f"unsupported ce_specversion {found['ce_specversion']!r}; expected {SPEC_VERSION}")
    time_text = found["ce_time"]
    moment = parse_time(time_text)
    sequence = _parse_sequence(found.get("ce_sequence"))
    data = _decode_json_object(value)
    event_id = found["ce_id"]
    envelope = _build(
        event_id,
        found["ce_type"],
        found["ce_source"],
        found["ce_subject"],
        data,
        found["ce_actor"],
        found.get("ce_correlationid") or event_id,
        found.get("ce_causationid"),
        moment,
        sequence,
        found.get("ce_prevhash"),
    )
    return envelope, time_text


def _canonical_time(text: str) -> str | None:
    """`text` when it is exactly what `format_time` makes of it (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, as every writer
    stamps it), else None. Only called on text `parse_time` accepted, so the other characters are digits."""
    if (
        len(text) == 27
        and text[26] == "Z"
        and text[10] == "T"
        and text[19] == "."
        and text[4] == text[7] == "-"
        and text[13] == text[16] == ":"
    ):
        return text
    return None


def _decode_headers(headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...]) -> dict[str, str]:
    """One comprehension for the usual record; the loop only for a record with a null or non-UTF-8 header."""
    try:
        return {name: raw.decode() for name, raw in headers or ()}
    except (AttributeError, UnicodeDecodeError):
        return _decode_headers_one_by_one(headers)


def _decode_headers_one_by_one(headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, raw in headers or ():
        try:
            found[name] = raw.decode() if raw is not None else ""
        except UnicodeDecodeError as exc:
            raise EnvelopeError(f"header {name} is not UTF-8") from exc
    return found


def _envelope_builder() -> Callable[..., Envelope]:
    """Why: the frozen dataclass __init__ sets each field through `object.__setattr__` behind keyword arguments.
    Setting the slots through their descriptors makes the same Envelope (no __post_init__, every field given)
    in a third of the time, which is a tenth of decoding a record."""
    order: tuple[str, ...] = (
        "id",
        "type",
        "source",
        "subject",
        "data",
        "actor",
        "correlation_id",
        "causation_id",
        "time",
        "sequence",
        "prev_hash",
    )
    if sorted(order) != sorted(f.name for f in fields(Envelope)):
        raise TypeError("the Envelope builder must set every Envelope field, each once")
    lines = [f"def build({', '.join(order)}):", "    new = make(Envelope)"]
    lines += [f"    set_{name}(new, {name})" for name in order]
    lines.append("    return new")
    namespace: dict[str, Any] = {"make": object.__new__, "Envelope": Envelope}
    namespace.update({f"set_{name}": Envelope.__dict__[name].__set__ for name in order})
    exec("\n".join(lines), namespace)  # the source is built from the field names above only
    return namespace["build"]  # type: ignore[no-any-return]


def _parse_sequence(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit():
        raise EnvelopeError(f"ce_sequence {text!r} is not a non-negative integer")
    return int(text)


def _decode_json_object(value: bytes | None) -> dict[str, Any]:
    if value is None:
        raise EnvelopeError("record has no value; an event payload is a JSON object")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f"payload is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise EnvelopeError(f"payload is a JSON {type(data).__name__}, expected an object")
    return data


_build = _envelope_builder()
