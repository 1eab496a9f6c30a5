"""One outbox relay per service database publishes at a time: the holder of a lease row, renewed as it works.

Why: replicas of a service share one database, hence one outbox. Relays that published side by side would not
reorder a batch's events (each round sends every unsent row in id order, and a row is marked sent only after
the broker acknowledged it), but every row could go out once per replica, and each replica would do all the work.
With the lease, one replica publishes; the others stand by and take over within a lease period if it dies.

The lease is a row `relay_lease(name, owner, expires_at, renewed_at, epoch)`, taken and renewed by one atomic
UPDATE (`WHERE owner = me OR expires_at < now`), inserted on first use. `now` is the database's clock, so
replicas on hosts with skewed clocks agree on when a lease expired. `epoch` grows by one at every change of
owner: a fencing number that says, in logs and on /admin/relay, how often the relay changed hands.

The holder renews the lease when a third of it has passed and, in the very transaction that marks rows sent,
confirms it still owns the row. A holder that paused past its expiry (and was replaced) therefore never marks
rows: the new holder publishes them again, and consumers drop the duplicates by event id.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Gauge
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.store.database import Database
from shared.store.schema import relay_lease

log = logging.getLogger(__name__)

UNIX_EPOCH_JULIAN_DAY = 2440587.5
SECONDS_PER_DAY = 86400.0


class LeaseSettings(BaseSettings):
    """`AIDTRAIL_RELAY_LEASE_SECONDS`: how long a silent holder keeps the lease, i.e. the takeover delay.

    `AIDTRAIL_RELAY_LEASE_OWNER`: a stable replica name (e.g. a StatefulSet pod name), so that a replica that
    crashed and restarted resumes its own lease at once instead of waiting for it to expire. It must be unique
    per replica; two processes with one name would both publish (safe, but every row goes out twice).
    """

    model_config = SettingsConfigDict(env_prefix="AIDTRAIL_RELAY_LEASE_", extra="ignore")
    seconds: float = Field(default=5.0, ge=1.0, le=600.0)
    owner: str | None = Field(default=None, min_length=1, max_length=200)


def relay_lease_name(service: str) -> str:
    """One lease per service database: the replicas of one service compete for it, other services do not."""
    return f"{service}.outbox"


def new_owner_id() -> str:
    """Host, process and a random suffix: unique per process start, and readable in logs and status."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def database_now(dialect: str) -> sa.ColumnElement[float]:
    """Seconds since the Unix epoch on the database's clock, the one clock every replica shares."""
    if dialect == "postgresql":
        return sa.cast(sa.func.extract("epoch", sa.func.clock_timestamp()), sa.Float)
    return (sa.func.julianday("now") - UNIX_EPOCH_JULIAN_DAY) * SECONDS_PER_DAY


@dataclass(frozen=True, slots=True)
class LeaseStatus:
    name: str
    owner: str | None
    expires_in: float | None
    epoch: int | None
    this_replica: str
    held_here: bool


class RelayLease:
    """The lease of one relay name in one database; one instance per relay, i.e. per process."""

    def __init__(self, database: Database, name: str, *, seconds: float | None = None, owner: str | None = None):
        configured = LeaseSettings()
        self.database = database
        self.name = name
        self.seconds = seconds if seconds is not None else configured.seconds
        self.owner = owner or configured.owner or new_owner_id()
        self.epoch = 0
        self._held = False
        self._valid_until = 0.0
        self._next_attempt = 0.0

    @property
    def held(self) -> bool:
        """Held and not yet possibly expired by this process's monotonic clock."""
        return self._held and time.monotonic() < self._valid_until

    async def ensure(self) -> bool:
        """May this replica publish now? Goes to the database only when a renewal or a retry is due."""
        now = time.monotonic()
        if now < self._next_attempt:
            return self.held
        try:
            async with self.database.transaction() as conn:
                return await self.acquire(conn)
        except Exception:
            self._lose()
            raise

    async def acquire(self, conn: AsyncConnection) -> bool:
        """Take the lease if it is free or expired, renew it if it is ours; in the caller's transaction."""
        started = time.monotonic()
        now = database_now(conn.dialect.name)
        lease = relay_lease
        taken = await conn.execute(
            lease.update()
            .where(lease.c.name == self.name, (lease.c.owner == self.owner) | (lease.c.expires_at < now))
            .values(
                owner=self.owner,
                expires_at=now + self.seconds,
                renewed_at=now,
                epoch=sa.case((lease.c.owner == self.owner, lease.c.epoch), else_=lease.c.epoch + 1),
            )
        )
        held = taken.rowcount == 1 or await self._insert_first(conn, now)
        if held:
            await self._load_epoch(conn)
        self._record(held, started)
        return held

    async def confirm(self, conn: AsyncConnection) -> bool:
        """Still ours? Renews it too. Called in the transaction that marks rows sent, so a replaced holder cannot."""
        started = time.monotonic()
        now = database_now(conn.dialect.name)
        lease = relay_lease
        renewed = await conn.execute(
            lease.update()
            .where(lease.c.name == self.name, lease.c.owner == self.owner)
            .values(expires_at=now + self.seconds, renewed_at=now)
        )
        held = renewed.rowcount == 1
        if not held and self._held:
            log.warning("relay lease lost to another replica", extra={"lease": self.name, "owner": self.owner})
        self._record(held, started)
        return held

    async def release(self) -> None:
        """On a clean stop: expire our lease now, so that another replica takes over at its next round."""
        self._lose()
        async with self.database.transaction() as conn:
            await conn.execute(
                relay_lease.update()
                .where(relay_lease.c.name == self.name, relay_lease.c.owner == self.owner)
                .values(expires_at=0.0)
            )

    async def status(self) -> LeaseStatus:
        lease = relay_lease
        async with self.database.read() as conn:
            now = database_now(conn.dialect.name)
            query = sa.select(lease.c.owner, lease.c.epoch, (lease.c.expires_at - now).label("expires_in"))
            row = (await conn.execute(query.where(lease.c.name == self.name))).first()
        if row is None:
            return LeaseStatus(self.name, None, None, None, self.owner, False)
        return LeaseStatus(self.name, row.owner, float(row.expires_in), int(row.epoch), self.owner, self.held)

    async def _insert_first(self, conn: AsyncConnection, now: sa.ColumnElement[float]) -> bool:
        """The first round ever: create the row. A replica that inserts it at the same moment wins; we do not."""
        exists = await conn.execute(sa.select(relay_lease.c.name).where(relay_lease.c.name == self.name))
        if exists.first() is not None:
            return False
        row = {"name": self.name, "owner": self.owner, "expires_at": now + self.seconds, "renewed_at": now, "epoch": 1}
        try:
            async with conn.begin_nested():
                await conn.execute(relay_lease.insert().values(**row))
        except IntegrityError:
            return False
        return True

    async def _load_epoch(self, conn: AsyncConnection) -> None:
        query = sa.select(relay_lease.c.epoch).where(relay_lease.c.name == self.name)
        epoch = int((await conn.execute(query)).scalar_one())
        if epoch != self.epoch:
            log.info("relay lease taken", extra={"lease": self.name, "owner": self.owner, "epoch": epoch})
        self.epoch = epoch

    def _record(self, held: bool, started: float) -> None:
        """Trust the lease locally for most of its period, measured from before the database granted it.

        The database set its expiry after `started`, so `started + seconds` is never later than the real expiry;
        the last fifth is a margin for clock rates and for a round that is already under way.
        """
        self._held = held
        if held:
            self._valid_until = started + self.seconds * 0.8
            self._next_attempt = started + self.seconds / 3
        else:
            self._valid_until = 0.0
            self._next_attempt = time.monotonic() + min(1.0, self.seconds / 5)

    def _lose(self) -> None:
        self._held = False
        self._valid_until = 0.0
        self._next_attempt = 0.0


def install_lease_gauge(registry: CollectorRegistry, held: Callable[[], bool]) -> Gauge:
    """`aidtrail_relay_lease_held` is 1 on the replica whose relay publishes, 0 on the ones standing by."""
    gauge = Gauge(
        "aidtrail_relay_lease_held",
        "1 if this replica holds the outbox relay lease and publishes, 0 if it stands by",
        registry=registry,
    )
    gauge.set_function(lambda: 1.0 if held() else 0.0)
    return gauge
