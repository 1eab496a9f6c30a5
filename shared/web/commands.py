"""How every write route runs: one transaction that decides, appends events and records the idempotent answer.

A retried request with the same Idempotency-Key gets the stored answer and writes nothing; the same key with a
different body is refused. A lost optimistic-concurrency race is retried against the new state a few times.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.domain.batch_fold import fold
from shared.domain.batch_state import BatchState
from shared.domain.errors import Conflict, NotFound, RuleViolation
from shared.events.envelope import Envelope, format_time, utc_now
from shared.events.registry import BATCH_EVENT_TYPES, parse_envelope
from shared.projections.batch_view import fold_stored, refresh_batch, upsert_view
from shared.store.event_store import ConcurrencyConflict, StreamAppend
from shared.store.schema import idempotency_keys
from shared.web.runtime import ServiceRuntime

MAX_ATTEMPTS = 4


@dataclass
class Outcome:
    """What a decision produced: the appends to make and the answer to give."""

    body: Any
    status_code: int = 200
    appends: list[StreamAppend] = field(default_factory=list)


Decide = Callable[[AsyncConnection], Awaitable[Outcome]]


class _IdempotencyRace(Exception):
    """Another request with the same key committed first; the retry returns its stored answer."""


def fingerprint(payload: Any) -> str:
    return hashlib.sha256(orjson.dumps(jsonable_encoder(payload), option=orjson.OPT_SORT_KEYS)).hexdigest()


async def execute(
    runtime: ServiceRuntime,
    decide: Decide,
    *,
    principal: str,
    idempotency_key: str | None,
    request_fingerprint: str,
) -> JSONResponse:
    for _attempt in range(MAX_ATTEMPTS):
        try:
            return await _attempt_once(runtime, decide, principal, idempotency_key, request_fingerprint)
        except (ConcurrencyConflict, _IdempotencyRace):
            continue
    raise Conflict("the batch kept changing while this command was decided; send it again")


async def _attempt_once(
    runtime: ServiceRuntime, decide: Decide, principal: str, key: str | None, request_fingerprint: str
) -> JSONResponse:
    scoped_key = _scoped_key(runtime.spec.name, principal, key) if key else None
    async with runtime.database.transaction() as conn:
        await runtime.store.lock_writes(conn)
        if scoped_key and (stored := await _stored_answer(conn, scoped_key, request_fingerprint)):
            return stored
        outcome = await decide(conn)
        written = await runtime.store.append(conn, outcome.appends)
        await _refresh_views(conn, runtime, outcome.appends, written)
        body = jsonable_encoder(outcome.body)
        if scoped_key:
            await _store_answer(conn, scoped_key, principal, request_fingerprint, outcome.status_code, body)
    if outcome.appends:
        runtime.events_committed()
    return JSONResponse(body, status_code=outcome.status_code)


async def _refresh_views(
    conn: AsyncConnection, runtime: ServiceRuntime, appends: list[StreamAppend], written: list[Envelope]
) -> None:
    """Refold every batch this command wrote to. A stream that was empty before (expected version 0) is exactly
    the events just written, so it is folded from them instead of being read back: one round trip less per new
    batch, inside the transaction that holds the write lock."""
    created = {append.stream_id for append in appends if append.expected_version == 0}
    updated_at = format_time(utc_now())
    by_batch: dict[str, list[Envelope]] = {}
    for envelope in written:
        if envelope.type in BATCH_EVENT_TYPES:
            by_batch.setdefault(envelope.subject, []).append(envelope)
    for batch_id, envelopes in by_batch.items():
        if batch_id not in created:
            await refresh_batch(conn, runtime.store, batch_id, updated_at)
        elif (state := fold((parse_envelope(e) for e in envelopes), batch_id)) is not None:
            await upsert_view(conn, state, updated_at)


def _scoped_key(service: str, principal: str, key: str) -> str:
    """Keys are per service and per caller; hashed, so that long keys or subjects always fit the column."""
    return hashlib.sha256(f"{service}\x00{principal}\x00{key}".encode()).hexdigest()


async def _stored_answer(conn: AsyncConnection, key: str, request_fingerprint: str) -> JSONResponse | None:
    row = (await conn.execute(sa.select(idempotency_keys).where(idempotency_keys.c.key == key))).first()
    if row is None:
        return None
    if row.fingerprint != request_fingerprint:
        raise RuleViolation(
            "this Idempotency-Key was already used for a different request; use a new key for a new request"
        )
    return JSONResponse(orjson.loads(row.body), status_code=row.status_code, headers={"Idempotent-Replay": "true"})


async def _store_answer(
    conn: AsyncConnection, key: str, principal: str, request_fingerprint: str, status_code: int, body: Any
) -> None:
    try:
        async with conn.begin_nested():
            await conn.execute(
                idempotency_keys.insert().values(
                    key=key,
                    principal=principal,
                    fingerprint=request_fingerprint,
                    status_code=status_code,
                    body=orjson.dumps(body).decode(),
                    created_at=format_time(utc_now()),
                )
            )
    except IntegrityError as exc:
        raise _IdempotencyRace from exc


async def load_batch(runtime: ServiceRuntime, conn: AsyncConnection, batch_id: str) -> tuple[BatchState, int]:
    """The batch as the fold rebuilds it from this service's copy of its stream, with the stream's version."""
    stored = await runtime.store.load(conn, batch_id)
    state = fold_stored(stored, batch_id)
    if state is None:
        raise NotFound(f"batch {batch_id} is not known here; check the id, or wait until its events have arrived")
    return state, stored[-1].version
