"""The outbox relay: publishes committed outbox rows to Kafka in commit order and marks them sent.

It wakes as soon as a command commits (no polling delay on the hot path) and also polls slowly, to pick up rows
left by a crash or written by another replica. Sends are batched: all rows of a round are handed to the
idempotent producer (acks=all) at once, then awaited together. A crash after the send and before the mark
publishes the rows again; consumers drop the duplicates by event id.

Replicas of a service share its database: only the replica holding the relay lease publishes
(`relay_lease.py`), and it marks rows sent only while it still holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import orjson
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer

from shared.events.envelope import format_time, utc_now
from shared.messaging.kafka_config import connection_options
from shared.messaging.relay_lease import RelayLease
from shared.settings import Settings
from shared.store.database import Database
from shared.store.schema import outbox

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    topic: str
    key: str
    headers: list[tuple[str, bytes]]
    value: bytes


def make_producer(settings: Settings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **connection_options(settings),
        enable_idempotence=True,
        acks="all",
        linger_ms=2,
        max_batch_size=256 * 1024,
        request_timeout_ms=15_000,
    )


class OutboxRelay:
    def __init__(
        self,
        database: Database,
        producer: AIOKafkaProducer,
        *,
        batch_size: int = 500,
        poll_seconds: float = 1.0,
        lease: RelayLease | None = None,
    ):
        self.database = database
        self.lease = lease
        self.producer = producer
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.published = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()

    def wake(self) -> None:
        """Called after every commit that wrote outbox rows."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.lease is not None:
            with contextlib.suppress(Exception):
                await self.lease.release()

    @property
    def holds_lease(self) -> bool:
        """Whether this replica's relay publishes (always, without a lease: one process per database)."""
        return self.lease is None or self.lease.held

    async def backlog(self) -> int:
        async with self.database.read() as conn:
            count = await conn.execute(sa.select(sa.func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None)))
            return int(count.scalar() or 0)

    async def publish_pending(self) -> int:
        """One or more rounds until the outbox is empty; returns how many rows were published."""
        total = 0
        while await self._may_publish() and (rows := await self._fetch_unsent()):
            await self._send(rows)
            if not await self._mark_sent(rows):
                break
            total += len(rows)
        self.published += total
        return total

    async def _run(self) -> None:
        while True:
            # Cleared BEFORE the round: a commit that wakes us while the round runs (after its last fetch) keeps
            # the event set and gets a round of its own at once, instead of waiting for the slow poll.
            self._wake.clear()
            try:
                await self.publish_pending()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker or database away: keep the rows, try again shortly
                log.warning("outbox relay round failed; rows stay queued", extra={"error": str(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)

    async def _fetch_unsent(self) -> list[OutboxRow]:
        query = (
            sa.select(outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.headers, outbox.c.value)
            .where(outbox.c.sent_at.is_(None))
            .order_by(outbox.c.id)
            .limit(self.batch_size)
        )
        async with self.database.read() as conn:
            result = await conn.execute(query)
            return [
                OutboxRow(
                    row.id, row.topic, row.key, [(n, v.encode()) for n, v in orjson.loads(row.headers)], row.value
                )
                for row in result
            ]

    async def _send(self, rows: list[OutboxRow]) -> None:
        futures = [
            await self.producer.send(row.topic, value=row.value, key=row.key.encode(), headers=row.headers)
            for row in rows
        ]
        await asyncio.gather(*futures)

    async def _may_publish(self) -> bool:
        return self.lease is None or await self.lease.ensure()

    async def _mark_sent(self, rows: list[OutboxRow]) -> bool:
        """False if another replica took the lease meanwhile: it publishes these rows again, so leave them."""
        ids = [row.id for row in rows]
        async with self.database.transaction() as conn:
            if self.lease is not None and not await self.lease.confirm(conn):
                return False
            await conn.execute(outbox.update().where(outbox.c.id.in_(ids)).values(sent_at=format_time(utc_now())))
        return True
