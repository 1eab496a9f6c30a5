"""One Kafka record as the auditor sees it: where it sits in the log, and the event it carries (or why not)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from shared.events.envelope import Envelope, EnvelopeError, from_record_hashed

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LogRecord:
    """`envelope` is None when the record is not a readable CloudEvent; `error` then says why."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: str | None
    envelope: Envelope | None
    error: str | None
    content_hash: str | None

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"

    @property
    def timestamp(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    @property
    def event_id(self) -> str | None:
        return self.envelope.id if self.envelope else None


def decode(raw: Any) -> LogRecord:
    """Decode an aiokafka ConsumerRecord; an unreadable record becomes a LogRecord with an error, never an
    exception, because the auditor must report bad records rather than stop at the first one."""
    key = raw.key.decode(errors="replace") if raw.key is not None else None
    try:
        envelope, content_hash = from_record_hashed(raw.headers, raw.value)
    except EnvelopeError as exc:
        return _build(raw.topic, raw.partition, raw.offset, raw.timestamp, key, None, str(exc), None)
    return _build(raw.topic, raw.partition, raw.offset, raw.timestamp, key, envelope, None, content_hash)


def slot_builder(cls: type[T]) -> Callable[..., T]:
    """A positional constructor for a frozen slots dataclass made once per event on the replay's hot path. Why:
    the frozen __init__ sets each field through `object.__setattr__`; setting the slots through their
    descriptors makes the same object (arguments in field order, no __post_init__) in about a third of the time."""
    names = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
    lines = [f"def build({', '.join(names)}):", "    new = make(cls)"]
    lines += [f"    set_{name}(new, {name})" for name in names]
    lines.append("    return new")
    namespace: dict[str, Any] = {"make": object.__new__, "cls": cls}
    namespace.update({f"set_{name}": cls.__dict__[name].__set__ for name in names})
    exec("\n".join(lines), namespace)  # the source is built from the dataclass's field names only
    return cast(Callable[..., T], namespace["build"])


_build = slot_builder(LogRecord)


def to_millis(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def merge_key(record: LogRecord) -> tuple[int, int]:
    """Order of the merged log across partitions: record timestamp, then the writer's sequence, so that one
    service's events stamped in the same millisecond still come out in chain order."""
    sequence = record.envelope.sequence if record.envelope and record.envelope.sequence is not None else 0
    return (record.timestamp_ms, sequence)
