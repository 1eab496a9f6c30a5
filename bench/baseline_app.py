"""The baseline of the commands row: a plain FastAPI route that inserts the same pledge row into the same database.

Same request body and validation (PledgeIn), same table (the pledge service's own migrations), same Database class
(writer engine, BEGIN IMMEDIATE on SQLite, same pool on PostgreSQL), same uvicorn setup; no events, no outbox, no
hash chain, no batch view, no idempotency, no auth. The ratio ours/baseline is then the price of the event path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from services.pledge.schemas import PledgeIn
from services.pledge.tables import pledges
from shared.events.envelope import format_time, new_event_id, utc_now
from shared.settings import Settings
from shared.store.database import Database
from shared.store.migrations import upgrade

PLEDGE_MIGRATIONS = Path(__file__).resolve().parent.parent / "services" / "pledge" / "migrations"


def pledge_row(body: PledgeIn) -> dict[str, object]:
    """The row POST /pledges writes: the same columns, the lines as JSON with their batch ids."""
    pledge_id = body.pledge_id or f"pledge-{new_event_id()[-12:]}"
    lines = [
        {**line.model_dump(mode="json"), "line_no": n, "batch_id": f"{pledge_id}-{n}"}
        for n, line in enumerate(body.lines, start=1)
    ]
    return {
        "pledge_id": pledge_id,
        "donor_id": body.donor_id,
        "purpose": body.purpose,
        "funds_amount": body.funds_amount,
        "funds_currency": body.funds_currency,
        "lines": orjson.dumps(lines).decode(),
        "registered_at": format_time(utc_now()),
    }


def create(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    database = Database.connect(settings.resolved_database_url())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await upgrade(database, PLEDGE_MIGRATIONS)
        yield
        await database.dispose()

    app = FastAPI(title="bench baseline", lifespan=lifespan)

    @app.get("/health/ready")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/pledges", status_code=201)
    async def register_pledge(body: PledgeIn) -> JSONResponse:
        row = pledge_row(body)
        async with database.transaction() as conn:
            await conn.execute(pledges.insert().values(**row))
        return JSONResponse({"pledge_id": row["pledge_id"]}, status_code=201)

    return app
