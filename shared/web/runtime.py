"""Everything one service process holds while it runs, wired once at startup and handed to routes by name."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.protocol.metadata import MetadataRequest
from fastapi import APIRouter, Request

from shared.events.batch_events import Payload
from shared.events.envelope import Envelope
from shared.events.registry import payload_data
from shared.messaging.consumer import Handler, ProjectionConsumer
from shared.messaging.relay import OutboxRelay, make_producer
from shared.messaging.relay_lease import RelayLease, relay_lease_name
from shared.messaging.topics import ensure_topics
from shared.settings import Settings
from shared.store.database import Database
from shared.store.event_store import EventStore, TopicNames
from shared.web.logging import get_correlation_id

log = logging.getLogger(__name__)

KAFKA_RETRY_SECONDS = 2.0
KAFKA_PROBE_SECONDS = 2.0


@dataclass(frozen=True)
class ConsumerSpec:
    """A projection this service keeps: which topics it reads and the handler, built from the runtime."""

    name: str
    topics: Callable[[Settings], list[str]]
    handler: Callable[[ServiceRuntime], Handler]


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    title: str
    description: str
    versions_dir: Path
    routers: Sequence[APIRouter]
    consumers: Sequence[ConsumerSpec] = ()


@dataclass
class ServiceRuntime:
    spec: ServiceSpec
    settings: Settings
    database: Database
    store: EventStore
    producer: AIOKafkaProducer | None = None
    relay: OutboxRelay | None = None
    consumers: list[ProjectionConsumer] = field(default_factory=list)
    kafka_started: bool = False
    metrics: Any = None
    _kafka_task: asyncio.Task[None] | None = None

    @classmethod
    def build(cls, spec: ServiceSpec, settings: Settings) -> ServiceRuntime:
        database = Database.connect(settings.resolved_database_url())
        store = EventStore(spec.name, TopicNames(batch=settings.batch_topic, reference=settings.reference_topic))
        return cls(spec=spec, settings=settings, database=database, store=store)

    def new_event(self, payload: Payload, subject: str, actor: str, causation_id: str | None = None) -> Envelope:
        return Envelope(
            type=payload.event_type,
            source=self.spec.name,
            subject=subject,
            data=payload_data(payload),
            actor=actor,
            correlation_id=get_correlation_id(),
            causation_id=causation_id,
        )

    def consumer_name(self, consumer_spec: ConsumerSpec) -> str:
        """The consumer group, and the name its positions and parked events are stored under."""
        return f"{self.settings.topic_prefix}.{self.spec.name}.{consumer_spec.name}"

    def events_committed(self) -> None:
        if self.relay is not None:
            self.relay.wake()

    def start_kafka(self) -> None:
        """Kafka may be away at startup: commands still commit into the outbox while this keeps trying."""
        self._kafka_task = asyncio.create_task(self._connect_kafka(), name="kafka-connect")

    async def _connect_kafka(self) -> None:
        while True:
            try:
                await self._start_kafka_parts()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("Kafka not reachable yet; retrying", extra={"error": str(exc)})
                await self._stop_kafka_parts()
                await asyncio.sleep(KAFKA_RETRY_SECONDS)

    async def _start_kafka_parts(self) -> None:
        await ensure_topics(self.settings)
        self.producer = make_producer(self.settings)
        await self.producer.start()
        self.relay = OutboxRelay(
            self.database,
            self.producer,
            batch_size=self.settings.relay_batch_size,
            poll_seconds=self.settings.relay_poll_seconds,
            lease=RelayLease(self.database, relay_lease_name(self.spec.name)),
        )
        self.relay.start()
        for consumer_spec in self.spec.consumers:
            consumer = ProjectionConsumer(
                name=self.consumer_name(consumer_spec),
                topics=consumer_spec.topics(self.settings),
                handler=consumer_spec.handler(self),
                database=self.database,
                settings=self.settings,
                lock_writes=self.store.lock_writes,
            )
            await consumer.start()
            self.consumers.append(consumer)
        self.kafka_started = True

    async def _stop_kafka_parts(self) -> None:
        for consumer in self.consumers:
            with contextlib.suppress(Exception):
                await consumer.stop()
        self.consumers.clear()
        if self.relay is not None:
            await self.relay.stop()
            self.relay = None
        if self.producer is not None:
            with contextlib.suppress(Exception):
                await self.producer.stop()
            self.producer = None
        self.kafka_started = False

    async def kafka_reachable(self) -> bool:
        """One metadata request for this service's own topics, to any broker that answers within the timeout.

        Not `fetch_all_metadata`: on a broker with thousands of topics (a shared cluster, or the test broker after a
        day of test runs) that takes seconds, and readiness stayed at 503 although Kafka was perfectly usable."""
        if not self.kafka_started or self.producer is None:
            return False
        client = self.producer.client
        request = MetadataRequest([self.settings.batch_topic, self.settings.reference_topic])
        for broker in client.cluster.brokers():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.send(broker.nodeId, request), timeout=KAFKA_PROBE_SECONDS)
                return True
        return False

    async def stop(self) -> None:
        if self._kafka_task is not None:
            self._kafka_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._kafka_task
        await self._stop_kafka_parts()
        await self.database.dispose()


def get_runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime
