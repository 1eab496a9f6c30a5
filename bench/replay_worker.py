"""One replay in its own process: `python -m bench.replay_worker MODE PREFIX SIZE` prints one JSON line.

A process per replay, because peak RSS (ru_maxrss) only ever grows: measured in a shared process, the second
replay would inherit the first one's high-water mark, and a baseline would inherit our imports.

Modes:
* `raw`: the baseline, an aiokafka consumer loop that only counts records.
* `fold`: from_record + parse_envelope + apply per batch, with the shared code; what an auditor must at least do.
* `auditor`: the auditor's own replay (services.audit), when it exists.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from bench.auditor import find_replay, run_auditor
from bench.eventlog import topic_partitions
from shared.settings import Settings

FETCH_TIMEOUT_MS = 500
OnBatch = Callable[[list[ConsumerRecord]], None]


@dataclass
class ReplayOutcome:
    mode: str
    events: int
    seconds: float
    peak_rss: int = 0
    errors: int = 0
    open_batches: int = 0
    detail: dict[str, Any] = field(default_factory=dict)
    # CPU time of the replay (this process, user + system). On a shared, busy machine the wall-clock `seconds`
    # also count the time others held the cores; the CPU seconds do not, so A/B comparisons use both.
    cpu_seconds: float = 0.0


def make_consumer(settings: Settings) -> AIOKafkaConsumer:
    """The same consumer for the baseline and the fold loop, so the two differ only in what they do per record."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False, client_id="bench-replay"
    )


async def read_to_end(settings: Settings, on_batch: OnBatch) -> int:
    """Read the batch topic from offset 0 to the end offsets captured at the start; `on_batch(records)` per fetch."""
    consumer = make_consumer(settings)
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, settings.batch_topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        return await _drain(consumer, {tp: end for tp, end in ends.items() if end > 0}, on_batch)
    finally:
        await consumer.stop()


async def _drain(consumer: AIOKafkaConsumer, remaining: dict[TopicPartition, int], on_batch: OnBatch) -> int:
    """Done with a partition when its position reaches the captured end: asking the position, not the last
    record's offset, also ends a partition whose last offsets are not records (transaction markers)."""
    seen = 0
    while remaining:
        for tp, records in (await consumer.getmany(*remaining, timeout_ms=FETCH_TIMEOUT_MS)).items():
            end = remaining[tp]
            wanted = records if records[-1].offset < end else [r for r in records if r.offset < end]
            on_batch(wanted)
            seen += len(wanted)
        for tp, end in list(remaining.items()):
            if await consumer.position(tp) >= end:
                del remaining[tp]
                consumer.pause(tp)
    return seen


async def replay_raw(settings: Settings) -> ReplayOutcome:
    counted = [0]

    def count(records: list[ConsumerRecord]) -> None:
        counted[0] += len(records)

    began, cpu_began = time.perf_counter(), time.process_time()
    await read_to_end(settings, count)
    return ReplayOutcome("raw", counted[0], time.perf_counter() - began, cpu_seconds=time.process_time() - cpu_began)


async def replay_fold(settings: Settings) -> ReplayOutcome:
    from bench.fold_loop import FoldLoop

    loop = FoldLoop()
    began, cpu_began = time.perf_counter(), time.process_time()
    events = await read_to_end(settings, loop.apply_records)
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    return ReplayOutcome(
        "fold",
        events,
        seconds,
        errors=loop.errors,
        open_batches=len(loop.open),
        detail=dict(loop.totals),
        cpu_seconds=cpu,
    )


async def replay_auditor(settings: Settings, size: int) -> ReplayOutcome:
    replay = find_replay()
    if replay is None:
        raise SystemExit("the auditor's replay is not there yet (services.audit has no replay function)")
    began, cpu_began = time.perf_counter(), time.process_time()
    summary = await run_auditor(replay, settings)
    cpu = time.process_time() - cpu_began
    return ReplayOutcome("auditor", size, time.perf_counter() - began, detail=summary, cpu_seconds=cpu)


async def main(mode: str, prefix: str, size: int, bootstrap: str) -> ReplayOutcome:
    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=prefix, log_level="WARNING")
    if mode == "raw":
        outcome = await replay_raw(settings)
    elif mode == "fold":
        outcome = await replay_fold(settings)
    else:
        outcome = await replay_auditor(settings, size)
    outcome.peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return outcome


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.replay_worker")
    parser.add_argument("mode", choices=["raw", "fold", "auditor"])
    parser.add_argument("prefix", help="topic prefix of the generated log")
    parser.add_argument("size", type=int, help="events in the log")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse(sys.argv[1:])
    result = asyncio.run(main(args.mode, args.prefix, args.size, args.bootstrap))
    sys.stdout.write(orjson.dumps(asdict(result), default=str).decode() + "\n")
