"""Prometheus metrics: outbox backlog and consumer lag, read fresh on every scrape.

Each app gets its own registry so that several services can run in one test process without clashing.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from shared.web.runtime import ServiceRuntime, get_runtime

router = APIRouter(tags=["operations"])


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.outbox_backlog = Gauge("aidtrail_outbox_backlog", "Outbox rows not yet published", registry=self.registry)
        self.published = Gauge("aidtrail_events_published", "Events published by the relay", registry=self.registry)
        self.consumer_lag = Gauge(
            "aidtrail_consumer_lag",
            "Records behind the log end",
            ["consumer", "topic", "partition"],
            registry=self.registry,
        )
        self.applied = Gauge(
            "aidtrail_events_applied", "Events applied to projections", ["consumer"], registry=self.registry
        )
        self.parked = Gauge(
            "aidtrail_events_parked", "Events parked on the dead-letter path", ["consumer"], registry=self.registry
        )

    async def refresh(self, runtime: ServiceRuntime) -> None:
        if runtime.relay is not None:
            self.outbox_backlog.set(await runtime.relay.backlog())
            self.published.set(runtime.relay.published)
        for consumer in runtime.consumers:
            self.applied.labels(consumer.name).set(consumer.stats.applied)
            self.parked.labels(consumer.name).set(consumer.stats.parked)
            for (topic, partition), lag in consumer.stats.lag.items():
                self.consumer_lag.labels(consumer.name, topic, str(partition)).set(lag)


@router.get(
    "/metrics",
    summary="Prometheus metrics: outbox backlog and consumer lag.",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "The Prometheus text exposition format."}},
)
async def metrics(runtime: ServiceRuntime = Depends(get_runtime)) -> Response:
    service_metrics: ServiceMetrics = runtime.metrics
    await service_metrics.refresh(runtime)
    return Response(generate_latest(service_metrics.registry), media_type=CONTENT_TYPE_LATEST)
