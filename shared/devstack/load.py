"""A bounded load generator: concurrent commands against the services' HTTP APIs, as their real clients send them.

It records what the fault checks need: every command the system acknowledged (2xx) is kept with the events it
must have produced (`faults.Expected`), so that `faults.verify_no_loss` can prove each of them reached the log and
every projection exactly once; every other answer is only counted, by service and status (503s that carried a
Retry-After separately). It samples the RSS of the service processes, so a long run shows whether memory stays
bounded.

Always bounded: a Budget hands out at most `max_commands` command slots and none after `seconds`, optionally paced
to a steady rate; every wait for an event to travel between services has a deadline.

Two workloads, both built from the request shapes of the Hubei 2020 scenario: `PledgeStream` (pledges posted
continuously to the pledge service: the steady load of the broker and database faults) and `Journeys` (whole
journeys from pledge to signed receipt across all four services: the load test). `soak` runs `Journeys` on a fresh
stack and checks the result; `python -m shared.devstack.load --minutes 5` is its full mode.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped,unused-ignore]

from shared.devstack.faults import Expected, FaultSummary, verify_no_loss
from shared.devstack.processes import SERVICE_NAMES, Stack, StackConfig
from shared.events import batch_events as ev
from shared.events import reference_events as ref
from shared.scenario.client import Actor, ScenarioClient
from shared.scenario.hubei2020 import ADMIN, dispatcher, donor, operator, staff
from shared.scenario.hubei2020_data import deadline, line
from shared.settings import Settings

PROPAGATION_DEADLINE_SECONDS = 120.0
POLL_SECONDS = 0.1
RSS_INTERVAL_SECONDS = 1.0
# Memory is bounded when the peak of the last third of a run stays within this of the first third's peak.
RSS_GROWTH_FACTOR = 1.5
RSS_MARGIN_BYTES = 32 * 1024 * 1024
CI_SECONDS = 30.0
ITEM, STANDARD = "n95-mask", "N95"
JOURNEY_QUANTITY, NEED_QUANTITY = 100, 60  # the need takes part of the batch: every pick splits a child off

# uvicorn closes a keep-alive connection idle for 5 s, and httpx keeps idle connections for 5 s too: a request sent
# on a connection the server is closing at that very moment fails with ReadError. Expiring ours sooner avoids the race.
KEEPALIVE_EXPIRY_SECONDS = 2.0
HTTP_TIMEOUT_SECONDS = 30.0

Expects = Callable[[Any], Iterable[Expected]]


class LoadError(RuntimeError):
    """A setup command was refused, or an event did not travel between services before the deadline."""


def nothing(_response: Any) -> Iterable[Expected]:
    """For a command whose events the checks need not name."""
    return ()


def http_client() -> httpx.AsyncClient:
    """The load's HTTP client: one pool for all workers, idle connections dropped before the server drops them."""
    limits = httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS)
    return httpx.AsyncClient(timeout=HTTP_TIMEOUT_SECONDS, limits=limits)


# --- bounds -----------------------------------------------------------------------------------------------------


class Budget:
    """Command slots: at most `max_commands`, none after `seconds`, and at most `per_second` when paced.

    Pacing is what makes the load steady (a fixed rate whatever the fault), instead of as fast as the machine
    allows, which would only measure how long the consumers need to catch up afterwards."""

    def __init__(self, max_commands: int, seconds: float, per_second: float | None = None):
        self.max_commands = max_commands
        self.until = time.monotonic() + seconds
        self.interval = 1.0 / per_second if per_second else 0.0
        self.issued = 0
        self._next = time.monotonic()
        self._closed = False

    @property
    def open(self) -> bool:
        return not self._closed and self.issued < self.max_commands and time.monotonic() < self.until

    def close(self) -> None:
        self._closed = True

    async def slot(self) -> bool:
        """True when the caller may send one more command (after waiting for its turn when paced)."""
        if not self.open:
            return False
        self.issued += 1
        if self.interval:
            now = time.monotonic()
            turn = max(self._next, now)
            self._next = turn + self.interval
            await asyncio.sleep(turn - now)
        return not self._closed and time.monotonic() < self.until


# --- recording --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Acknowledged:
    """A command that got a 2xx, with the events it must have written."""

    service: str
    path: str
    status: int
    response: Any
    expected: tuple[Expected, ...]
    seconds: float


@dataclass
class Recorder:
    """Sends commands as one client of the services and keeps the record the checks compare with the log."""

    client: ScenarioClient
    acknowledged: list[Acknowledged] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    retry_after: Counter[str] = field(default_factory=Counter)
    error_samples: dict[str, str] = field(default_factory=dict)
    slowest_failure: dict[str, float] = field(default_factory=dict)
    attempts: int = 0

    async def command(
        self, service: str, path: str, actor: Actor, body: Any = None, expects: Expects = nothing
    ) -> Any | None:
        """POST one command; the answer's body on a 2xx, else None (the failure is counted, never raised)."""
        headers = {"Authorization": f"Bearer {self.client.token(actor)}"}
        began = time.monotonic()
        self.attempts += 1
        try:
            response = await self.client.http.post(self.client.urls[service] + path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            self._failed(service, type(exc).__name__, str(exc), time.monotonic() - began)
            return None
        if not 200 <= response.status_code < 300:
            self._failed(service, str(response.status_code), response.text, time.monotonic() - began)
            if response.status_code == 503 and "retry-after" in response.headers:
                self.retry_after[service] += 1
            return None
        answer = response.json() if response.content else None
        elapsed = time.monotonic() - began
        self.acknowledged.append(
            Acknowledged(service, path, response.status_code, answer, tuple(expects(answer)), elapsed)
        )
        return answer

    def _failed(self, service: str, status: str, text: str, seconds: float) -> None:
        """Counted by service and status; the first answer of each kind and the slowest one are kept to show."""
        key = f"{service} {status}"
        self.errors[key] += 1
        self.error_samples.setdefault(key, text[:300])
        self.slowest_failure[key] = round(max(seconds, self.slowest_failure.get(key, 0.0)), 3)

    @property
    def expected(self) -> list[Expected]:
        return [identity for command in self.acknowledged for identity in command.expected]

    async def wait_acknowledged(self, count: int, what: str, deadline: float = PROPAGATION_DEADLINE_SECONDS) -> None:
        """Until `count` commands in all were acknowledged: how a fault test knows the load is really flowing."""

        async def enough() -> bool | None:
            return True if len(self.acknowledged) >= count else None

        await poll(enough, what, deadline)

    async def read(self, service: str, path: str, actor: Actor = ADMIN) -> Any | None:
        """A GET that tolerates a service being away (fault tests restart them): None unless it answers 200."""
        try:
            response = await self.client.http.get(
                self.client.urls[service] + path, headers={"Authorization": f"Bearer {self.client.token(actor)}"}
            )
        except httpx.HTTPError:
            return None
        return response.json() if response.status_code == 200 else None

    async def wait_for(
        self, service: str, path: str, accept: Callable[[Any], bool], what: str, actor: Actor = ADMIN
    ) -> Any:
        async def probe() -> Any | None:
            found = await self.read(service, path, actor)
            return found if found is not None and accept(found) else None

        return await poll(probe, what, PROPAGATION_DEADLINE_SECONDS)


async def poll(probe: Callable[[], Awaitable[Any | None]], what: str, deadline: float) -> Any:
    until = time.monotonic() + deadline
    while (result := await probe()) is None:
        if time.monotonic() > until:
            raise LoadError(f"timed out after {deadline:.0f}s waiting for {what}")
        await asyncio.sleep(POLL_SECONDS)
    return result


async def required(recorder: Recorder, service: str, path: str, actor: Actor, body: Any, expects: Expects) -> Any:
    """A setup command: the workload cannot start without it."""
    answer = await recorder.command(service, path, actor, body, expects)
    if answer is None:
        raise LoadError(f"setup POST {service}{path} was refused: {dict(recorder.error_samples)}")
    return answer


# --- memory -----------------------------------------------------------------------------------------------------


def process_rss(pid: int) -> int:
    """Resident memory of a service process and any children it started."""
    try:
        process = psutil.Process(pid)
        return int(process.memory_info().rss) + sum(
            int(child.memory_info().rss) for child in process.children(recursive=True)
        )
    except psutil.Error:
        return 0


@dataclass(frozen=True)
class MemoryTrend:
    """Whether a service's memory stays bounded: the peak of the last third of the samples against the first's.

    A leak grows with the work done, so over a run the later peaks keep rising above the early ones; caches,
    connection pools and the allocator's arenas fill early and then stay flat. A factor of 1.5 plus 32 MB absorbs
    allocator noise and a cache that fills late in a short run. Peaks, not means, so one GC cycle neither hides nor
    fakes growth."""

    service: str
    samples: int
    first_peak: int
    last_peak: int

    @property
    def bounded(self) -> bool:
        return self.last_peak <= self.first_peak * RSS_GROWTH_FACTOR + RSS_MARGIN_BYTES

    def to_json(self) -> dict[str, Any]:
        mb = 1024 * 1024
        return {
            "samples": self.samples,
            "first_third_peak_mb": round(self.first_peak / mb, 1),
            "last_third_peak_mb": round(self.last_peak / mb, 1),
            "bounded": self.bounded,
        }


def memory_trend(service: str, samples: list[int]) -> MemoryTrend:
    third = max(1, len(samples) // 3)
    return MemoryTrend(service, len(samples), max(samples[:third], default=0), max(samples[-third:], default=0))


class RssSampler:
    """Samples each service process's RSS at a fixed interval while the load runs."""

    def __init__(self, pids: Mapping[str, int], interval: float = RSS_INTERVAL_SECONDS):
        self.pids = dict(pids)
        self.interval = interval
        self.samples: dict[str, list[int]] = {name: [] for name in pids}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rss-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.sample()

    def sample(self) -> None:
        for name, pid in self.pids.items():
            if rss := process_rss(pid):
                self.samples[name].append(rss)

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def trends(self) -> list[MemoryTrend]:
        return [memory_trend(name, samples) for name, samples in self.samples.items()]


def stack_pids(stack: Stack) -> dict[str, int]:
    return {name: svc.process.pid for name, svc in stack.services.items() if svc.process is not None}


# --- workload: a steady stream of pledges -----------------------------------------------------------------------


def pledged(answer: Any) -> list[Expected]:
    """A pledge writes pledge.registered on its own stream and batch.pledged on each line's batch."""
    found = [Expected(ref.PledgeRegistered.event_type, str(answer["pledge_id"]))]
    return found + [Expected(ev.BatchPledged.event_type, str(batch_id)) for batch_id in answer["batch_ids"]]


@dataclass
class PledgeStream:
    """Pledges of two lines each, posted continuously to the pledge service by `workers` concurrent clients.

    `attempted` keeps every pledge id sent, acknowledged or not: an event on the log whose command failed is
    allowed (the commit may have happened just before the connection broke), an event nobody sent is not."""

    recorder: Recorder
    donor_id: str = "steady-donor"
    warehouse_id: str = "wh-steady"
    attempted: set[str] = field(default_factory=set)
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])

    def sent(self, identity: Expected) -> bool:
        """Whether an event on the log comes from this stream: its donor, or a pledge (or a pledge's batch) sent."""
        if identity.event_type == ref.DonorRegistered.event_type:
            return identity.subject == self.donor_id
        return identity.subject.rsplit("-", 1)[0] in self.attempted or identity.subject in self.attempted

    async def setup(self) -> None:
        body = {"donor_id": self.donor_id, "name": "Steady Donor Ltd", "kind": "company", "country": "CN"}
        await required(self.recorder, "pledge", "/donors", donor(self.donor_id), body, self._donor_registered)

    def _donor_registered(self, _answer: Any) -> list[Expected]:
        return [Expected(ref.DonorRegistered.event_type, self.donor_id)]

    async def run(self, budget: Budget, workers: int) -> None:
        await asyncio.gather(*(self._worker(worker, budget) for worker in range(workers)))

    async def _worker(self, worker: int, budget: Budget) -> None:
        number = 0
        while await budget.slot():
            number += 1
            pledge_id = f"steady-{self.tag}-{worker}-{number}"
            self.attempted.add(pledge_id)
            await self.recorder.command("pledge", "/pledges", donor(self.donor_id), self._body(pledge_id), pledged)

    def _body(self, pledge_id: str) -> dict[str, Any]:
        lines = [line(ITEM, 1000, self.warehouse_id, STANDARD), line("protective-suit", 200, self.warehouse_id, None)]
        return {"pledge_id": pledge_id, "donor_id": self.donor_id, "purpose": "steady load", "lines": lines}


# --- workload: whole journeys across the four services ----------------------------------------------------------


def one(event_type: str, subject: str) -> Expects:
    return lambda _answer: [Expected(event_type, subject)]


def picked(batch_id: str) -> Expects:
    def expects(answer: Any) -> list[Expected]:
        child = str(answer["picked_batch_id"])
        if not answer["split"]:
            return [Expected(ev.BatchPicked.event_type, batch_id)]
        return [
            Expected(ev.BatchSplit.event_type, batch_id),
            Expected(ev.BatchCreatedBySplit.event_type, child),
            Expected(ev.BatchPicked.event_type, child),
        ]

    return expects


def confirmed(batch_id: str, need_id: str) -> Expects:
    def expects(answer: Any) -> list[Expected]:
        found = [Expected(ev.ReceiptConfirmed.event_type, batch_id)]
        if answer.get("need_fulfilled_event_id"):
            found.append(Expected(ref.NeedFulfilled.event_type, need_id))
        return found

    return expects


@dataclass
class Journeys:
    """Each worker takes batch after batch from pledge to signed receipt: the donor pledges (pledge), the warehouse
    receives, inspects, allocates to the hospital's need and picks (splitting a child off), dispatch ships and
    delivers, and the hospital registers the need and confirms receipt (recipient). Fourteen commands per journey,
    waiting between services for the events to arrive, as the people at each desk would."""

    recorder: Recorder
    workers: int
    warehouse_id: str = "wh-load"
    donor_id: str = "load-donor"
    completed: int = 0
    abandoned: Counter[str] = field(default_factory=Counter)

    def recipient(self, worker: int) -> str:
        return f"load-hospital-{worker}"

    async def setup(self, reference_consumer: str) -> None:
        """The world every journey needs, then a wait until dispatch has learnt all of it (it routes shipments
        only through sites it knows)."""
        site = {"site_id": self.warehouse_id, "name": "Load warehouse", "kind": "warehouse", "city": "Wuhan"}
        await self._setup("warehouse", "/sites", ADMIN, {**site, "country": "CN"}, self.warehouse_id)
        body = {"donor_id": self.donor_id, "name": "Load Donor Ltd", "kind": "company", "country": "CN"}
        await required(
            self.recorder,
            "pledge",
            "/donors",
            donor(self.donor_id),
            body,
            one(ref.DonorRegistered.event_type, self.donor_id),
        )
        for worker in range(self.workers):
            await self._register_recipient(worker)
        await self._wait_applied("dispatch", reference_consumer, 2 + 2 * self.workers)

    async def _setup(self, service: str, path: str, actor: Actor, body: Any, site_id: str) -> None:
        await required(self.recorder, service, path, actor, body, one(ref.SiteRegistered.event_type, site_id))

    async def _register_recipient(self, worker: int) -> None:
        recipient_id = self.recipient(worker)
        body = {
            "recipient_id": recipient_id,
            "name": f"Load Hospital {worker}",
            "kind": "hospital",
            "frontline": True,
            "site_id": f"site-{recipient_id}",
            "city": "Wuhan",
            "country": "CN",
        }

        def registered(_answer: Any) -> list[Expected]:
            return [
                Expected(ref.RecipientRegistered.event_type, recipient_id),
                Expected(ref.SiteRegistered.event_type, f"site-{recipient_id}"),
            ]

        await required(self.recorder, "recipient", "/recipients", ADMIN, body, registered)

    async def _wait_applied(self, service: str, consumer: str, count: int) -> None:
        pattern = re.compile(rf'aidtrail_events_applied\{{consumer="{re.escape(consumer)}"\}} ([0-9.e+]+)')

        async def probe() -> bool | None:
            try:
                text = (await self.recorder.client.http.get(self.recorder.client.urls[service] + "/metrics")).text
            except httpx.HTTPError:
                return None
            found = pattern.search(text)
            return True if found and float(found.group(1)) >= count else None

        await poll(probe, f"{consumer} to apply the {count} setup events", PROPAGATION_DEADLINE_SECONDS)

    async def run(self, budget: Budget) -> None:
        await asyncio.gather(*(self._worker(worker, budget) for worker in range(self.workers)))

    async def _worker(self, worker: int, budget: Budget) -> None:
        number = 0
        while budget.open:
            number += 1
            try:
                if await Journey(self, worker, f"jr-{worker}-{number}", budget).run():
                    self.completed += 1
            except LoadError as exc:
                self.abandoned[str(exc)[:120]] += 1
                self.recorder.errors["propagation timeout"] += 1


@dataclass
class Journey:
    """One batch from pledge to signed receipt; False when the budget ran out or a command was refused midway."""

    journeys: Journeys
    worker: int
    pledge_id: str
    budget: Budget

    @property
    def recorder(self) -> Recorder:
        return self.journeys.recorder

    @property
    def site(self) -> str:
        return self.journeys.warehouse_id

    async def step(self, service: str, path: str, actor: Actor, body: Any, expects: Expects) -> Any | None:
        if not await self.budget.slot():
            return None
        return await self.recorder.command(service, path, actor, body, expects)

    async def run(self) -> bool:
        recipient_id = self.journeys.recipient(self.worker)
        batch_id = await self.pledge(recipient_id)
        if batch_id is None or not await self.receive_and_inspect(batch_id):
            return False
        child = await self.allocate_and_pick(batch_id, recipient_id)
        if child is None or not await self.ship(child, recipient_id):
            return False
        return await self.confirm(child, recipient_id)

    async def pledge(self, recipient_id: str) -> str | None:
        donor_id = self.journeys.donor_id
        lines = [{**line(ITEM, JOURNEY_QUANTITY, self.site, STANDARD, recipient_id)}]
        body = {"pledge_id": self.pledge_id, "donor_id": donor_id, "purpose": "load journey", "lines": lines}
        answer = await self.step("pledge", "/pledges", donor(donor_id), body, pledged)
        return str(answer["batch_ids"][0]) if answer else None

    async def receive_and_inspect(self, batch_id: str) -> bool:
        await self.recorder.wait_for(
            "warehouse", f"/batches/{batch_id}", lambda _b: True, f"warehouse to see {batch_id}"
        )
        receipt = {
            "site_id": self.site,
            "quantity_received": JOURNEY_QUANTITY,
            "shortfall": 0,
            "lot": f"LOT-{batch_id}",
            "expiry": "2030-12-31",
            "condition": "good",
        }
        actor = operator(self.site)
        if not await self.step(
            "warehouse", f"/batches/{batch_id}/receive", actor, receipt, one(ev.BatchReceived.event_type, batch_id)
        ):
            return False
        inspection = {
            "inspector": "qc.load",
            "standard_checked": STANDARD,
            "accepted": JOURNEY_QUANTITY,
            "rejected": 0,
            "quarantined": 0,
            "evidence_refs": [f"qc-{batch_id}"],
        }
        expects = one(ev.BatchInspected.event_type, batch_id)
        return bool(await self.step("warehouse", f"/batches/{batch_id}/inspect", actor, inspection, expects))

    async def allocate_and_pick(self, batch_id: str, recipient_id: str) -> str | None:
        need_id = f"need-{self.pledge_id}"
        need = {
            "need_id": need_id,
            "recipient_id": recipient_id,
            "item": ITEM,
            "quantity": NEED_QUANTITY,
            "priority": "critical",
            "deadline": deadline(7),
        }
        if not await self.step(
            "recipient", "/needs", staff(recipient_id), need, one(ref.NeedRegistered.event_type, need_id)
        ):
            return None
        await self.recorder.wait_for(
            "warehouse",
            f"/needs?recipient_id={recipient_id}&status=open&limit=200",
            lambda page: any(item["need_id"] == need_id for item in page["items"]),
            f"warehouse to learn {need_id}",
        )
        allocation = {"need_id": need_id, "quantity": NEED_QUANTITY}
        expects = one(ev.BatchAllocated.event_type, batch_id)
        answer = await self.step("warehouse", f"/batches/{batch_id}/allocate", operator(self.site), allocation, expects)
        if not answer:
            return None
        allocation_id = next(a["allocation_id"] for a in answer["state"]["allocations"] if a["need_id"] == need_id)
        pick = await self.step(
            "warehouse",
            f"/allocations/{allocation_id}/pick",
            operator(self.site),
            {"picker": "picker.load"},
            picked(batch_id),
        )
        return str(pick["picked_batch_id"]) if pick else None

    async def ship(self, batch_id: str, recipient_id: str) -> bool:
        await self.recorder.wait_for(
            "dispatch",
            f"/batches/{batch_id}",
            lambda b: b["state"]["status"] == "picked",
            f"dispatch to see {batch_id}",
        )
        shipment_id = f"shp-{self.pledge_id}"
        leg = {
            "from_site_id": self.site,
            "to_site_id": f"site-{recipient_id}",
            "carrier": "SF Express",
            "vehicle": "SF-1",
        }
        body = {"shipment_id": shipment_id, "recipient_id": recipient_id, "batch_ids": [batch_id], "legs": [leg]}
        desk = dispatcher(self.site)
        if not await self.step("dispatch", "/shipments", desk, body, one(ref.ShipmentPlanned.event_type, shipment_id)):
            return False
        path = f"/shipments/{shipment_id}"
        if not await self.step("dispatch", f"{path}/dispatch", desk, {}, one(ev.BatchDispatched.event_type, batch_id)):
            return False
        return bool(
            await self.step("dispatch", f"{path}/deliver", desk, {}, one(ev.BatchDelivered.event_type, batch_id))
        )

    async def confirm(self, batch_id: str, recipient_id: str) -> bool:
        await self.recorder.wait_for(
            "recipient",
            f"/batches/{batch_id}",
            lambda b: b["state"]["status"] == "delivered",
            f"recipient to see {batch_id} delivered",
        )
        body = {"quantity_received": NEED_QUANTITY, "quantity_damaged": 0, "signed_by": f"dr.{recipient_id}"}
        path = f"/batches/{batch_id}/confirm-receipt"
        expects = confirmed(batch_id, f"need-{self.pledge_id}")
        return bool(await self.step("recipient", path, staff(recipient_id), body, expects))


# --- the soak: Journeys on a fresh stack, then the checks -------------------------------------------------------


@dataclass(frozen=True)
class LoadLimits:
    seconds: float = CI_SECONDS
    max_commands: int = 20_000
    workers: int = 6


@dataclass
class SoakResult:
    summary: FaultSummary
    memory: list[MemoryTrend]
    recorder: Recorder
    journeys: int

    @property
    def ok(self) -> bool:
        return self.summary.ok and not self.recorder.errors and all(trend.bounded for trend in self.memory)

    def to_json(self) -> dict[str, Any]:
        latencies = sorted(command.seconds for command in self.recorder.acknowledged)
        return {
            **self.summary.to_json(),
            "commands_sent": self.recorder.attempts,
            "journeys_completed": self.journeys,
            "error_samples": self.recorder.error_samples,
            "latency_ms": latency_figures(latencies),
            "rss": {trend.service: trend.to_json() for trend in self.memory},
        }


def latency_figures(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {}
    return {
        "median": round(statistics.median(latencies) * 1000, 1),
        "p95": round(latencies[int(len(latencies) * 0.95) - 1 if len(latencies) > 1 else 0] * 1000, 1),
        "max": round(latencies[-1] * 1000, 1),
    }


async def soak(
    run_dir: Path, kafka_bootstrap: str, limits: LoadLimits, database_urls: dict[str, str] | None = None
) -> SoakResult:
    """Start the four services, run `Journeys` within `limits` while sampling RSS, settle and check everything."""
    began = time.monotonic()
    prefix = f"soak{uuid.uuid4().hex[:8]}"
    config = StackConfig(
        run_dir=run_dir, topic_prefix=prefix, kafka_bootstrap=kafka_bootstrap, database_urls=database_urls or {}
    )
    stack = Stack(config)
    settings = Settings(topic_prefix=prefix, kafka_bootstrap=kafka_bootstrap)
    client = ScenarioClient({name: stack.url(name) for name in SERVICE_NAMES}, settings, http_client())
    try:
        await stack.start()  # inside the try: a service that never gets ready must not leave the others running
        recorder = Recorder(client)
        journeys = Journeys(recorder, limits.workers)
        await journeys.setup(f"{prefix}.dispatch.reference")
        sampler = RssSampler(stack_pids(stack))
        sampler.start()
        await journeys.run(Budget(limits.max_commands, limits.seconds))
        await sampler.stop()
        summary = FaultSummary("load", acknowledged=len(recorder.acknowledged), errors=dict(recorder.errors))
        await verify_no_loss(stack, settings, recorder.expected, summary)
        summary.seconds = time.monotonic() - began
        return SoakResult(summary, sampler.trends(), recorder, journeys.completed)
    finally:
        await client.close()
        stack.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Steady load on all four services, then loss and memory checks.")
    parser.add_argument("--minutes", type=float, default=CI_SECONDS / 60, help="How long the load runs.")
    parser.add_argument("--workers", type=int, default=LoadLimits.workers, help="Concurrent journeys.")
    parser.add_argument("--max-commands", type=int, default=LoadLimits.max_commands, help="Upper bound on commands.")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers.")
    parser.add_argument("--run-dir", type=Path, default=None, help="Where the services' databases and logs go.")
    args = parser.parse_args(argv)
    limits = LoadLimits(seconds=args.minutes * 60, max_commands=args.max_commands, workers=args.workers)
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="aidtrail-soak-"))
    result = asyncio.run(soak(run_dir, args.bootstrap, limits))
    print(json.dumps(result.to_json(), indent=2))
    print(f"{'OK' if result.ok else 'FAILED'}: logs and databases in {run_dir}", file=sys.stderr)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
