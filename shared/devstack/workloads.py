"""The two workloads, both built from the request shapes of the Hubei 2020 scenario.

`PledgeStream` posts pledges continuously to the pledge service: the steady load of the broker and database faults.
`Journeys` takes whole batches from pledge to signed receipt across all four services: the load test.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.devstack.log_reader import Expected
from shared.devstack.recorder import PROPAGATION_DEADLINE_SECONDS, Budget, Expects, LoadError, Recorder, poll, required
from shared.events import batch_events as ev
from shared.events import reference_events as ref
from shared.scenario.client import Actor
from shared.scenario.hubei2020 import ADMIN, dispatcher, donor, operator, staff
from shared.scenario.hubei2020_data import deadline, line

ITEM, STANDARD = "n95-mask", "N95"
JOURNEY_QUANTITY, NEED_QUANTITY = 100, 60  # the need takes part of the batch: every pick splits a child off

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
