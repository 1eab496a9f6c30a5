"""Wires the pledge service: its routes, its migrations and the batch view it consumes."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.pledge.api import router
from shared.projections.batch_view import replicate_batches
from shared.settings import Settings
from shared.web import batch_routes
from shared.web.app_factory import create_app
from shared.web.runtime import ConsumerSpec, ServiceSpec

SPEC = ServiceSpec(
    name="pledge",
    title="aidtrail pledge service",
    description="Donors and their pledges. Each pledge line becomes a tracked batch (batch.pledged).",
    versions_dir=Path(__file__).parent / "migrations",
    routers=[router, batch_routes.router],
    consumers=[
        ConsumerSpec(
            name="batches",
            topics=lambda settings: [settings.batch_topic],
            handler=lambda runtime: replicate_batches(runtime.store),
        )
    ],
)


def create(settings: Settings | None = None) -> FastAPI:
    return create_app(SPEC, settings)
