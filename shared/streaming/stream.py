"""The SSE body of one stream: `ready`, then matching events, heartbeats, and a final `overflow` or `error`.

Every message with an `id:` carries the stream position after it; the id of a heartbeat moves the position
past events the filters skipped, so a reconnect does not re-read them. A position is only ever sent when every
matching event before it has been sent, so a client's Last-Event-ID never skips an event and never goes back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from sse_starlette import ServerSentEvent

from shared.events.envelope import SPEC_VERSION, Envelope, format_time
from shared.streaming.config import StreamConfig
from shared.streaming.reader import StartAt, StreamItem, StreamReader, TopicsMissing

Offsets = Mapping[TopicPartition, int]


def cloudevent(envelope: Envelope) -> dict[str, Any]:
    """CloudEvents 1.0 JSON (structured) format: what the Kafka headers say, with the payload as `data`."""
    body: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "id": envelope.id,
        "type": envelope.type,
        "source": envelope.source,
        "subject": envelope.subject,
        "time": format_time(envelope.time),
        "datacontenttype": "application/json",
        "actor": envelope.actor,
        "correlationid": envelope.correlation_id,
    }
    if envelope.causation_id:
        body["causationid"] = envelope.causation_id
    if envelope.sequence is not None:
        body["sequence"] = envelope.sequence
    if envelope.prev_hash is not None:
        body["prevhash"] = envelope.prev_hash
    body["data"] = envelope.data
    return body


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def event_message(reader: StreamReader, item: StreamItem) -> ServerSentEvent:
    return ServerSentEvent(_json(cloudevent(item.envelope)), id=reader.encode(item.offsets))


def ready_message(reader: StreamReader, resumed: bool, config: StreamConfig) -> ServerSentEvent:
    """First message: its id is the start position, so a client that leaves before any event still resumes
    exactly where it joined (a `from=latest` client would otherwise jump ahead)."""
    at = reader.encode(reader.offsets)
    data = {"position": at, "resumed": resumed, "filters": reader.event_filter.describe()}
    data["heartbeat_seconds"] = config.heartbeat_seconds
    return ServerSentEvent(_json(data), event="ready", id=at, retry=config.retry_ms)


def overflow_message(reader: StreamReader, last_sent: Offsets, config: StreamConfig) -> ServerSentEvent:
    at = reader.encode(dict(last_sent))
    data = {
        "reason": f"this client fell {config.buffer_size} events behind; the stream ends to keep memory bounded",
        "reconnect": "reconnect with this Last-Event-ID; nothing is lost, the id is the exact position",
        "last_event_id": at,
    }
    return ServerSentEvent(_json(data), event="overflow", id=at)


def error_message(reader: StreamReader, last_sent: Offsets, reason: str, config: StreamConfig) -> ServerSentEvent:
    at = reader.encode(dict(last_sent)) if last_sent else None
    data = {"reason": reason, "reconnect": "retry later with your Last-Event-ID"}
    return ServerSentEvent(_json(data), event="unavailable", id=at, retry=config.retry_ms)


def covers(later: Offsets, earlier: Offsets) -> bool:
    return all(later.get(tp, 0) >= offset for tp, offset in earlier.items())


async def next_item(reader: StreamReader, timeout: float) -> StreamItem | None:
    """The next buffered event, or None after `timeout` or when the reader stopped (overflow, failure)."""
    if not reader.queue.empty():
        return reader.queue.get_nowait()
    if reader.finished:
        return None
    getter = asyncio.ensure_future(reader.queue.get())
    done, _ = await asyncio.wait({getter, reader.task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    if getter in done:
        return getter.result()
    getter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await getter
    return None


async def stream_events(
    reader: StreamReader, resume: dict[TopicPartition, int] | None, start_at: StartAt, config: StreamConfig
) -> AsyncIterator[ServerSentEvent]:
    """Owns the reader: opened when the response starts, closed however the response ends."""
    reader.stats.open_streams += 1
    reader.stats.opened += 1
    try:
        try:
            await reader.open(resume, start_at)
        except (TopicsMissing, KafkaError, OSError) as exc:
            yield error_message(reader, {}, f"cannot read the topics yet: {exc}", config)
            return
        yield ready_message(reader, resume is not None, config)
        reader.start()
        async for message in _pump(reader, config):
            yield message
    finally:
        reader.stats.open_streams -= 1
        await reader.close()


async def _pump(reader: StreamReader, config: StreamConfig) -> AsyncIterator[ServerSentEvent]:
    last_sent: dict[TopicPartition, int] = dict(reader.offsets)
    while True:
        if reader.overflowed:
            yield overflow_message(reader, last_sent, config)
            return
        if reader.failure:
            yield error_message(reader, last_sent, reader.failure, config)
            return
        item = await next_item(reader, config.heartbeat_seconds)
        if item is not None:
            yield event_message(reader, item)
            last_sent = item.offsets
        elif reader.finished and not reader.overflowed:
            yield error_message(reader, last_sent, reader.failure or "the reader stopped", config)
            return
        elif not reader.finished:
            heartbeat, last_sent = _heartbeat(reader, last_sent)
            yield heartbeat


def _heartbeat(
    reader: StreamReader, last_sent: dict[TopicPartition, int]
) -> tuple[ServerSentEvent, dict[TopicPartition, int]]:
    """`: ping`, with an id-only position update when skipped events moved the position (EventSource then
    updates lastEventId without firing an event)."""
    candidate = dict(reader.offsets)
    if reader.queue.empty() and candidate != last_sent and covers(candidate, last_sent):
        return ServerSentEvent(comment="ping", id=reader.encode(candidate)), candidate
    return ServerSentEvent(comment="ping"), last_sent
