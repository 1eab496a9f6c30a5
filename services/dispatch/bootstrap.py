"""Wires the dispatch service: its routes, its migrations, and the two topics it learns from."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.dispatch.api import router
from services.dispatch.projections import reference_handler
from shared.projections.batch_view import replicate_batches
from shared.settings import Settings
from shared.streaming import router as stream_router
from shared.web import batch_routes
from shared.web.app_factory import create_app
from shared.web.runtime import ConsumerSpec, ServiceSpec

SPEC = ServiceSpec(
    name="dispatch",
    title="aidtrail dispatch service",
    description=(
        "Shipments of picked batches from a warehouse through relay hubs to the recipient's facility: dispatch, "
        "arrival at hubs, carrier handovers, departure, delivery, and losses written off in transit. Dispatch apps "
        "that don't speak Kafka follow the events at GET /events/stream (Server-Sent Events, resumable)."
    ),
    versions_dir=Path(__file__).parent / "migrations",
    routers=[router, batch_routes.router, stream_router],
    consumers=[
        ConsumerSpec(
            name="batches",
            topics=lambda settings: [settings.batch_topic],
            handler=lambda runtime: replicate_batches(runtime.store),
        ),
        ConsumerSpec(
            name="reference",
            topics=lambda settings: [settings.reference_topic],
            handler=lambda _runtime: reference_handler(),
        ),
    ],
)


def create(settings: Settings | None = None) -> FastAPI:
    return create_app(SPEC, settings)
