"""One Kafka record as the auditor sees it: where it sits in the log, and the event it carries (or why not)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.events.envelope import Envelope, EnvelopeError, from_record


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
        envelope = from_record(list(raw.headers or ()), raw.value)
    except EnvelopeError as exc:
        return LogRecord(raw.topic, raw.partition, raw.offset, raw.timestamp, key, None, str(exc), None)
    return LogRecord(raw.topic, raw.partition, raw.offset, raw.timestamp, key, envelope, None, envelope.content_hash())


def to_millis(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def merge_key(record: LogRecord) -> tuple[int, int]:
    """Order of the merged log across partitions: record timestamp, then the writer's sequence, so that one
    service's events stamped in the same millisecond still come out in chain order."""
    sequence = record.envelope.sequence if record.envelope and record.envelope.sequence is not None else 0
    return (record.timestamp_ms, sequence)
