"""The load and the faults of the replicas test: pledges, amendments and receipts posted to alternating replicas,
replicas crashed, stopped and restarted meanwhile, a watch on every replica's relay lease, and each batch stream
as a service's database holds it.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import sqlalchemy as sa
from aiokafka.admin import AIOKafkaAdminClient

from shared.devstack.processes import Stack
from shared.events.registry import BATCH_EVENT_TYPES
from shared.settings import Settings
from shared.store.database import Database
from shared.store.schema import events
from shared.web.auth import Role, mint_token
from tests.harness import wait_until

REPLICAS = {"pledge": ("pledge", "pledge-2"), "warehouse": ("warehouse", "warehouse-2")}
CONSUMERS = {"pledge": (("batches", "batch"),), "warehouse": (("batches", "batch"), ("reference", "reference"))}
WORKERS = 4
PLEDGES_PER_WORKER = 15
TOTAL_PLEDGES = WORKERS * PLEDGES_PER_WORKER
LEASE_SECONDS = "3"
CALL_DEADLINE_SECONDS = 180.0
RETRY_SECONDS = 0.3
DEADLINE_SECONDS = 240.0
SITE = "wh-replicas"


# --- the load: pledges, amendments and receipts on alternating replicas ----------------------------------------


@dataclass
class Ledger:
    """What the services acknowledged (2xx), and what it took to get there."""

    pledges: dict[str, list[str]] = field(default_factory=dict)
    event_ids: dict[str, list[str]] = field(default_factory=dict)
    failovers: Counter[str] = field(default_factory=Counter)
    refused: list[str] = field(default_factory=list)
    done: int = 0

    async def reached(self, count: int) -> None:
        await wait_until(lambda: asyncio.sleep(0, self.done >= count), what=f"{count} pledges", deadline=300)


class Driver:
    def __init__(self, stack: Stack, settings: Settings, ledger: Ledger):
        self.stack = stack
        self.ledger = ledger
        token = mint_token("load", Role.admin, settings=settings)
        self.http = httpx.AsyncClient(timeout=30.0, headers={"Authorization": f"Bearer {token}"})

    async def call(self, service: str, turn: int, method: str, path: str, body: Any, key: str) -> Any | None:
        """Try the replicas in turn, with the same Idempotency-Key: a refused connection or a 5xx fails over, and
        a 404 waits for the batch to reach this service (through Kafka, so possibly through a rebalance)."""
        replicas = REPLICAS[service]
        until = time.monotonic() + CALL_DEADLINE_SECONDS
        attempt = 0
        while time.monotonic() < until:
            name = replicas[(turn + attempt) % 2]
            attempt += 1
            try:
                response = await self.http.request(
                    method, self.stack.url(name) + path, json=body, headers={"Idempotency-Key": key}
                )
            except httpx.TransportError:
                self.ledger.failovers[name] += 1
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if response.status_code < 300:
                return response.json()
            if response.status_code < 500 and response.status_code != 404:
                self.ledger.refused.append(f"{method} {path} -> {response.status_code}: {response.text[:300]}")
                return None
            await asyncio.sleep(RETRY_SECONDS)
        self.ledger.refused.append(f"{method} {path}: no replica answered in {CALL_DEADLINE_SECONDS:.0f}s")
        return None

    async def worker(self, worker: int) -> None:
        for number in range(PLEDGES_PER_WORKER):
            await self.journey(f"r{worker}-{number}", worker + number)
            self.ledger.done += 1

    async def journey(self, pledge_id: str, turn: int) -> None:
        """A pledge of two lines; line 1 amended twice (three pledge events), line 2 received at the warehouse."""
        lines = [{"item": "n95-mask", "quantity": q, "unit": "piece", "warehouse_id": SITE} for q in (100, 200)]
        body = {"pledge_id": pledge_id, "donor_id": "replica-donor", "lines": lines}
        created = await self.call("pledge", turn, "POST", "/pledges", body, f"create-{pledge_id}")
        if created is None:
            return
        self.ledger.pledges[pledge_id] = created["batch_ids"]
        first, second = created["batch_ids"]
        for amendment, quantity in enumerate((101, 102)):
            path, change = f"/pledges/{pledge_id}/lines/1", {"quantity": quantity, "reason": "recounted"}
            amended = await self.call(
                "pledge", turn + amendment + 1, "PATCH", path, change, f"amend-{pledge_id}-{quantity}"
            )
            if amended is not None:
                self.ledger.event_ids.setdefault(first, []).append(amended["event_id"])
        receipt = {"site_id": SITE, "quantity_received": 200, "lot": "L1", "expiry": "2030-01-01", "condition": "good"}
        received = await self.call(
            "warehouse", turn, "POST", f"/batches/{second}/receive", receipt, f"receive-{second}"
        )
        if received is not None:
            self.ledger.event_ids.setdefault(second, []).extend(received["event_ids"])

    async def register_donor(self) -> None:
        body = {"donor_id": "replica-donor", "name": "Replica Donor"}
        assert await self.call("pledge", 0, "POST", "/donors", body, "donor") is not None, self.ledger.refused


# --- faults, and a watch on the relay leases -------------------------------------------------------------------


async def metric(http: httpx.AsyncClient, url: str, name: str) -> float | None:
    try:
        text = (await http.get(f"{url}/metrics", timeout=5.0)).text
    except httpx.HTTPError:
        return None
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    return values[0] if values else None


@dataclass
class LeaseWatch:
    """Samples every replica's `aidtrail_relay_lease_held`: never two holders of one service's lease at once."""

    stack: Stack
    samples: int = 0
    most_holders: dict[str, int] = field(default_factory=Counter)
    holders_seen: dict[str, set[str]] = field(default_factory=dict)

    async def holder(self, http: httpx.AsyncClient, service: str) -> str | None:
        held = []
        for name in REPLICAS[service]:
            if await metric(http, self.stack.url(name), "aidtrail_relay_lease_held") == 1.0:
                held.append(name)
        self.most_holders[service] = max(self.most_holders[service], len(held))
        self.holders_seen.setdefault(service, set()).update(held)
        return held[0] if held else None

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient() as http:
            while not stop.is_set():
                for service in REPLICAS:
                    await self.holder(http, service)
                self.samples += 1
                await asyncio.sleep(0.3)

    async def current(self, service: str) -> str:
        async with httpx.AsyncClient() as http:

            async def probe() -> str | None:
                return await self.holder(http, service)

            return await wait_until(probe, what=f"a {service} replica holding the relay lease", deadline=60)


async def group_members(settings: Settings, group: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    return len(response.groups[0][5])


async def stop_gracefully(stack: Stack, name: str) -> None:
    process = stack.services[name]
    process.signal(signal.SIGTERM)
    await asyncio.to_thread(process.wait_exit)


async def inject_faults(stack: Stack, settings: Settings, ledger: Ledger, watch: LeaseWatch) -> list[str]:
    """Join, crash, restart and leave replicas at points of the load, so every change happens under traffic."""
    done: list[str] = []
    group = f"{settings.topic_prefix}.warehouse.batches"
    await ledger.reached(TOTAL_PLEDGES // 6)
    await stack.start("warehouse-2")
    await wait_until(lambda: _members_are(settings, group, 2), what="two warehouse replicas in one group", deadline=90)
    done.append("warehouse-2 joined the group")
    await crash_and_restart(stack, ledger, await watch.current("pledge"), 2 * TOTAL_PLEDGES // 6, done)
    await crash_and_restart(stack, ledger, await watch.current("warehouse"), 3 * TOTAL_PLEDGES // 6, done)
    await ledger.reached(5 * TOTAL_PLEDGES // 6)
    await stop_gracefully(stack, "warehouse-2")
    await stack.restart("warehouse-2")
    done.append("warehouse-2 stopped (SIGTERM) and restarted")
    return done


async def crash_and_restart(stack: Stack, ledger: Ledger, name: str, at: int, done: list[str]) -> None:
    """SIGKILL the replica holding the lease, let the load fail over for a while, then bring it back."""
    await ledger.reached(at)
    stack.kill(name)
    await ledger.reached(at + TOTAL_PLEDGES // 12)
    await stack.restart(name)
    done.append(f"{name} (lease holder) killed at {at} pledges and restarted")


async def _members_are(settings: Settings, group: str, count: int) -> bool:
    try:
        return await group_members(settings, group) == count
    except Exception:
        return False


async def batch_streams(database: Database) -> dict[str, list[tuple[int, str]]]:
    query = (
        sa.select(events.c.stream_id, events.c.version, events.c.event_id)
        .where(events.c.event_type.in_(sorted(BATCH_EVENT_TYPES)))
        .order_by(events.c.stream_id, events.c.version)
    )
    streams: dict[str, list[tuple[int, str]]] = {}
    async with database.read() as conn:
        for row in await conn.execute(query):
            streams.setdefault(row.stream_id, []).append((int(row.version), row.event_id))
    return streams
