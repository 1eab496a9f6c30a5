"""Stand-in for the warehouse in the latency row while the warehouse service is not ready: the shared
ProjectionConsumer with the shared batch_view handler (replicate_batches), in a service of its own.

It is what every service does with the batch topic at the least, so pledge -> this is a lower bound of
pledge -> warehouse; the report says which one was measured.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from shared.projections.batch_view import replicate_batches
from shared.settings import Settings
from shared.web.app_factory import create_app
from shared.web.runtime import ConsumerSpec, ServiceSpec

SPEC = ServiceSpec(
    name="projection",
    title="bench projection",
    description="The shared batch view, consumed from the batch topic; nothing else.",
    versions_dir=Path(__file__).resolve().parent.parent / "services" / "pledge" / "migrations",
    routers=[],
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
