"""Wires the dispatch service: its routes, its migrations, and the two topics it learns from."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.dispatch.api import router
from services.dispatch.projections import reference_handler, replicate_batches_forward
from shared.settings import Settings
from shared.web import batch_routes
from shared.web.app_factory import create_app
from shared.web.runtime import ConsumerSpec, ServiceSpec

SPEC = ServiceSpec(
    name="dispatch",
    title="aidtrail dispatch service",
    description=(
        "Shipments of picked batches from a warehouse through relay hubs to the recipient's facility: dispatch, "
        "arrival at hubs, carrier handovers, departure, delivery, and losses written off in transit."
    ),
    versions_dir=Path(__file__).parent / "migrations",
    routers=[router, batch_routes.router],
    consumers=[
        ConsumerSpec(
            name="batches",
            topics=lambda settings: [settings.batch_topic],
            handler=lambda runtime: replicate_batches_forward(runtime.store),
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
