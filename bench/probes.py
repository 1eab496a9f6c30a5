"""Instrumentation for the latency row, installed only in a benchmark's server process (never in the services).

* In pledge: the wall-clock time each command's transaction committed, by correlation id (ServiceRuntime's
  events_committed hook runs right after the commit).
* In warehouse: the wall-clock time each batch event's partition batch committed in the batch projection, by the
  event's correlation id (after ProjectionConsumer._apply_partition_batch returns, its transaction is committed),
  and the record's timestamp (set by the relay's producer when it sent the record), which splits the latency
  into relay (commit -> produce) and broker + consumer (produce -> applied).

Both processes read the same clock (CLOCK_REALTIME on one machine), so applied - committed is the propagation
latency. `GET /_bench/probe` hands the times out, and says whether every consumer has its partitions yet.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from fastapi import FastAPI, Request

from shared.messaging.consumer import ProjectionConsumer
from shared.web.logging import current_correlation_id
from shared.web.runtime import ServiceRuntime

COMMITTED: dict[str, float] = {}
APPLIED: dict[str, float] = {}
PRODUCED: dict[str, float] = {}  # the record's timestamp: when the relay's producer created it
PROJECTION_SUFFIX = ".batches"

ApplyBatch = Callable[[ProjectionConsumer, TopicPartition, list[ConsumerRecord]], Awaitable[None]]


def _correlation(record: ConsumerRecord) -> str | None:
    for name, value in record.headers or ():
        if name == "ce_correlationid":
            return bytes(value).decode(errors="replace")
    return None


def install_commit_probe() -> None:
    original: Callable[[ServiceRuntime], None] = ServiceRuntime.events_committed

    def events_committed(self: ServiceRuntime) -> None:
        correlation = current_correlation_id()
        if correlation is not None:
            COMMITTED[correlation] = time.time()
        original(self)

    setattr(ServiceRuntime, "events_committed", events_committed)  # noqa: B010 (mypy: method assignment)


def install_apply_probe() -> None:
    original: ApplyBatch = ProjectionConsumer._apply_partition_batch

    async def apply_partition_batch(
        self: ProjectionConsumer, tp: TopicPartition, records: list[ConsumerRecord]
    ) -> None:
        await original(self, tp, records)
        if self.name.endswith(PROJECTION_SUFFIX):
            now = time.time()
            for record in records:
                if (correlation := _correlation(record)) is not None:
                    APPLIED.setdefault(correlation, now)
                    PRODUCED.setdefault(correlation, record.timestamp / 1000)

    setattr(ProjectionConsumer, "_apply_partition_batch", apply_partition_batch)  # noqa: B010


def add_probe_route(app: FastAPI) -> None:
    async def probe(request: Request) -> dict[str, Any]:
        runtime: ServiceRuntime | None = getattr(request.app.state, "runtime", None)
        consumers = runtime.consumers if runtime is not None else []
        assigned = bool(runtime and runtime.kafka_started) and all(
            c.consumer is not None and c.consumer.assignment() for c in consumers
        )
        return {"assigned": assigned, "committed": COMMITTED, "applied": APPLIED, "produced": PRODUCED}

    app.add_api_route("/_bench/probe", probe, methods=["GET"])
