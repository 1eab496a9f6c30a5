"""Builds a service's FastAPI app: migrations, topics, outbox relay and consumers start and stop with it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from shared.contract.router import router as contract_router
from shared.messaging.relay_lease import install_lease_gauge
from shared.settings import Settings, get_settings
from shared.store.migrations import upgrade
from shared.web import deadletter_routes, health, metrics, policy
from shared.web.auth import install_auth_error_handler, use_auth_settings
from shared.web.errors import install_error_handlers
from shared.web.logging import CorrelationIdMiddleware, configure_logging
from shared.web.runtime import ServiceRuntime, ServiceSpec


def create_app(spec: ServiceSpec, settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(spec.name, settings.log_level, settings=settings)
        runtime = ServiceRuntime.build(spec, settings)
        runtime.metrics = metrics.ServiceMetrics()
        install_lease_gauge(runtime.metrics.registry, lambda: runtime.relay is not None and runtime.relay.holds_lease)
        if settings.migrate_on_start:
            await upgrade(runtime.database, spec.versions_dir)
        runtime.start_kafka()
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(title=spec.title, description=spec.description, version="1.0.0", lifespan=lifespan)
    policy.install(app, spec.name)  # request limits, and every refusal named in the OpenAPI document
    app.add_middleware(CorrelationIdMiddleware)
    install_error_handlers(app)
    install_auth_error_handler(app)
    use_auth_settings(app, settings)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(contract_router)
    app.include_router(deadletter_routes.router)
    for router in spec.routers:
        app.include_router(router)
    return app
