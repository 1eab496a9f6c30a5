"""Wires the recipient service: its routes, its migrations and the batch view it consumes."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.recipient.api import router
from services.recipient.projections import batch_consumer
from shared.settings import Settings
from shared.web import batch_routes
from shared.web.app_factory import create_app
from shared.web.runtime import ConsumerSpec, ServiceSpec

SPEC = ServiceSpec(
    name="recipient",
    title="aidtrail recipient service",
    description=(
        "Hospitals, health committees and civil-protection agencies, their needs, the batches on their way to "
        "them, and the signed confirmation of what arrived (batch.receipt-confirmed), which fulfils their needs."
    ),
    versions_dir=Path(__file__).parent / "migrations",
    routers=[router, batch_routes.router],
    consumers=[
        ConsumerSpec(name="batches", topics=lambda settings: [settings.batch_topic], handler=batch_consumer),
    ],
)


def create(settings: Settings | None = None) -> FastAPI:
    return create_app(SPEC, settings)
