"""Reads the event topics from start to a fixed end, merged across partitions in timestamp order.

Why this shape:
* Its own consumer: manual partition assignment, `group_id=None`, no commits. The auditor never joins a
  service's group, so it cannot steal partitions or move anyone's position.
* A fixed end: the end offsets are captured when the replay starts, so a replay terminates even while the
  services keep writing. "As of T" also stops each partition at its first record stamped after T.
* A k-way merge by record timestamp: one service's events are spread over many partitions (and over both
  topics), and its hash chain can only be checked in sequence order. Each service's relay publishes in commit
  order, so timestamp order is (nearly) sequence order and the chain verifier needs only a small reorder window.
  Within a partition the log order is kept exactly: the fold of a batch sees its events as written.
* Bounded memory: at most one fetch (`fetch_records`) is buffered per partition, whatever the log's length.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.audit.records import LogRecord, decode, merge_key, to_millis
from shared.messaging.kafka_config import connection_options
from shared.settings import Settings

STALL_SECONDS = 60.0
# Small fetches keep the buffered bytes flat: with 1 MiB per partition the allocator's fragmentation made peak
# memory at 200k events 11% above the peak at 20k; with 256 KiB it is within 2%, at the same throughput.
FETCH_BYTES_PER_PARTITION = 256 * 1024
FETCH_BYTES_TOTAL = 8 * 1024 * 1024
# The consumer's fetcher is a task on the same event loop: it can only send the next fetch request, and read the
# answer off the socket, while the replay awaits. Folding a buffer without ever yielding left the replay idle
# for a whole broker round trip at every refill (a third of its run); yielding every this many records lets
# the next fetch travel while the current one is folded, for a few microseconds per yield.
YIELD_EVERY = 64


class ReplayError(RuntimeError):
    """The log could not be read to its end (broker unreachable, topic unreadable); the message says what."""


@dataclass(frozen=True, slots=True)
class ReplayWindow:
    """`since`: start at the first record stamped at or after it (offsets_for_times); `until`: as-of cut."""

    since: datetime | None = None
    until: datetime | None = None


@dataclass(slots=True)
class _Partition:
    tp: TopicPartition
    index: int
    start: int
    end: int
    buffer: deque[LogRecord] = field(default_factory=deque)
    fetched_all: bool = False


@dataclass(frozen=True, slots=True)
class LogExtent:
    """What the replay covers: per partition `[start, end)` offsets as captured when it began."""

    offsets: dict[str, tuple[int, int]]
    missing_topics: tuple[str, ...]

    @property
    def total(self) -> int:
        return sum(end - start for start, end in self.offsets.values())


class LogReader:
    def __init__(
        self,
        settings: Settings,
        topics: Sequence[str],
        window: ReplayWindow | None = None,
        keys: Collection[str] | None = None,
        fetch_records: int = 2000,
    ):
        self.settings = settings
        self.topics = list(topics)
        self.window = window or ReplayWindow()
        self.keys = frozenset(keys) if keys is not None else None
        self.fetch_records = fetch_records
        self._until_ms = to_millis(self.window.until) if self.window.until else None
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[_Partition] = []
        self._paused: set[TopicPartition] = set()
        self.extent = LogExtent({}, ())

    async def __aenter__(self) -> LogReader:
        self._consumer = AIOKafkaConsumer(
            **connection_options(self.settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            client_id="aidtrail-audit",
            request_timeout_ms=30_000,
            max_partition_fetch_bytes=FETCH_BYTES_PER_PARTITION,
            fetch_max_bytes=FETCH_BYTES_TOTAL,
        )
        try:
            await self._consumer.start()
            await self._assign(self._consumer)
        except Exception as exc:
            await self._consumer.stop()
            raise ReplayError(f"cannot read the log at {self.settings.kafka_bootstrap}: {exc}") from exc
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def _assign(self, consumer: AIOKafkaConsumer) -> None:
        layout = await self._describe()
        missing = tuple(topic for topic in self.topics if not layout.get(topic))
        tps = [TopicPartition(topic, partition) for topic in self.topics for partition in layout.get(topic, [])]
        if not tps:
            self.extent = LogExtent({}, missing)
            return
        consumer.assign(tps)
        starts = await self._start_offsets(consumer, tps)
        ends = await consumer.end_offsets(tps)
        for index, tp in enumerate(tps):
            start = min(starts[tp], ends[tp])
            consumer.seek(tp, start)
            self._partitions.append(_Partition(tp, index, start, ends[tp], fetched_all=start >= ends[tp]))
        self._throttle()
        self.extent = LogExtent(
            {f"{p.tp.topic}[{p.tp.partition}]": (p.start, p.end) for p in self._partitions}, missing
        )

    async def _describe(self) -> dict[str, list[int]]:
        """Partitions per topic, from the admin API: it does not create a missing topic, and a consumer without a
        subscription has no public way to learn a topic's partitions."""
        admin = AIOKafkaAdminClient(**connection_options(self.settings), request_timeout_ms=30_000)
        await admin.start()
        try:
            described = await admin.describe_topics(self.topics)
        finally:
            await admin.close()
        return {
            entry["topic"]: sorted(p["partition"] for p in entry["partitions"])
            for entry in described
            if entry["error_code"] == 0
        }

    async def _start_offsets(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        beginnings: dict[TopicPartition, int] = await consumer.beginning_offsets(tps)
        if self.window.since is None:
            return beginnings
        ends = await consumer.end_offsets(tps)
        found = await consumer.offsets_for_times({tp: to_millis(self.window.since) for tp in tps})
        return {tp: found[tp].offset if found.get(tp) is not None else ends[tp] for tp in tps}

    async def records(self, on_progress: Callable[[int], None] | None = None) -> AsyncIterator[LogRecord]:
        """Yield every record of the window, merged across partitions by (timestamp, sequence)."""
        heads: list[tuple[int, int, int]] = []
        live = [p for p in self._partitions if not p.fetched_all]
        consumed = merged = 0
        while True:
            hungry = [p for p in live if not p.buffer and not p.fetched_all]
            if hungry:
                others = [p for p in live if p.buffer and not p.fetched_all]
                consumed += await self._fill(hungry, others, heads)
                if on_progress:
                    on_progress(consumed)
                    consumed = 0
                continue
            live = [p for p in live if p.buffer]
            if not heads:
                return
            _, _, index = heapq.heappop(heads)
            partition = self._partitions[index]
            record = partition.buffer.popleft()
            if partition.buffer:
                heapq.heappush(heads, _head_key(partition))
            yield record
            merged += 1
            if merged % YIELD_EVERY == 0:
                await asyncio.sleep(0)

    async def _fill(self, hungry: list[_Partition], others: list[_Partition], heads: list[tuple[int, int, int]]) -> int:
        """Fetch for the partitions whose buffer ran dry, and take whatever was fetched for the `others` too;
        returns how many offsets were consumed.

        Why the others: the fetcher sends no request to a broker while records of any of its partitions wait in
        its own buffer (up to its 100 ms prefetch backoff), so records left there stall every partition. Taken
        into our buffers, they let the next request go out; `_throttle` pauses a partition whose buffer is full,
        which keeps memory bounded however unevenly the partitions are consumed."""
        assert self._consumer is not None
        deadline = time.monotonic() + STALL_SECONDS
        while True:
            fetched = await self._consumer.getmany(
                *(p.tp for p in hungry + others), timeout_ms=200, max_records=self.fetch_records * (1 + len(others))
            )
            consumed = sum(self._take(partition, fetched.get(partition.tp, [])) for partition in others)
            others = [p for p in others if not p.fetched_all]
            for partition in hungry:
                consumed += self._take(partition, fetched.get(partition.tp, []))
                if not partition.buffer and not partition.fetched_all:
                    await self._check_exhausted(partition)
                if partition.buffer:
                    heapq.heappush(heads, _head_key(partition))
            self._throttle()
            if consumed or all(p.buffer or p.fetched_all for p in hungry):
                return consumed
            if time.monotonic() > deadline:
                names = ", ".join(f"{p.tp.topic}[{p.tp.partition}]" for p in hungry)
                raise ReplayError(f"no records arrived for {STALL_SECONDS:.0f}s from {names}; is the broker up?")
            await asyncio.sleep(0)

    def _take(self, partition: _Partition, raws: list[Any]) -> int:
        consumed = 0
        for raw in raws:
            if raw.offset >= partition.end or (self._until_ms is not None and raw.timestamp > self._until_ms):
                partition.fetched_all = True
                break
            consumed += 1
            if raw.offset + 1 >= partition.end:
                partition.fetched_all = True
            if self.keys is None or (raw.key or b"").decode(errors="replace") in self.keys:
                partition.buffer.append(decode(raw))
        return consumed

    def _throttle(self) -> None:
        """Fetch only for partitions that can take more: not read to the end, buffer below `fetch_records`.

        A fetch request holding only partitions at their end makes the broker wait its full fetch_max_wait for
        data that never comes, and the fetcher sends no other request to that broker meanwhile."""
        assert self._consumer is not None
        full = {p.tp for p in self._partitions if p.fetched_all or len(p.buffer) >= self.fetch_records}
        if full - self._paused:
            self._consumer.pause(*(full - self._paused))
        if self._paused - full:
            self._consumer.resume(*(self._paused - full))
        self._paused = full

    async def _check_exhausted(self, partition: _Partition) -> None:
        """Control records (transaction markers) have offsets but no data; the position tells us we are done."""
        assert self._consumer is not None
        if await self._consumer.position(partition.tp) >= partition.end:
            partition.fetched_all = True


def _head_key(partition: _Partition) -> tuple[int, int, int]:
    return (*merge_key(partition.buffer[0]), partition.index)
