"""Wires the warehouse service: its routes, its migrations and the two topics it consumes."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.warehouse import allocation_api, intake_api, sites_api
from services.warehouse.projections import reference_handler, warehouse_batches
from shared.settings import Settings
from shared.web import batch_routes
from shared.web.app_factory import create_app
from shared.web.runtime import ConsumerSpec, ServiceSpec

SPEC = ServiceSpec(
    name="warehouse",
    title="aidtrail warehouse service",
    description=(
        "Intake of pledged batches, inspection against the declared standard, quarantine, stock, allocation of "
        "stock to needs (frontline first) under the designation lock, picking and splitting, write-offs."
    ),
    versions_dir=Path(__file__).parent / "migrations",
    routers=[sites_api.router, intake_api.router, allocation_api.router, batch_routes.router],
    consumers=[
        ConsumerSpec(
            name="batches",
            topics=lambda settings: [settings.batch_topic],
            handler=lambda runtime: warehouse_batches(runtime.store),
        ),
        ConsumerSpec(
            name="reference",
            topics=lambda settings: [settings.reference_topic],
            handler=lambda runtime: reference_handler(),
        ),
    ],
)


def create(settings: Settings | None = None) -> FastAPI:
    return create_app(SPEC, settings)
