"""The scenario that proves the lifecycle, run through the HTTP APIs of all four services over Kafka.

Donors pledge, warehouses receive and inspect (one mask lot fails N95), recipients register needs, stock is
allocated by priority (one designated batch is redesignated with an approver), picked (splitting batches),
shipped through the Xiantao relay hub with a carrier handover, delivered, and confirmed (one delivery short).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared.scenario import hubei2020_data as data
from shared.scenario.client import Actor, ScenarioClient
from shared.web.auth import Role

ADMIN = Actor(Role.admin, "federation.coordinator")
CARRIER_LEG1, CARRIER_HUB = "SF Express", "Xiantao relief convoy"

Progress = Callable[[str], None]


def operator(site: str) -> Actor:
    return Actor(Role.operator, f"operator.{site}", sites=(site,))


def dispatcher(*sites: str) -> Actor:
    return Actor(Role.dispatcher, "dispatch.desk", sites=sites)


def donor(donor_id: str) -> Actor:
    return Actor(Role.donor, f"{donor_id}.desk", donor_id=donor_id)


def staff(recipient_id: str) -> Actor:
    return Actor(Role.recipient_staff, f"{recipient_id}.receiving", recipient_id=recipient_id)


@dataclass
class ScenarioResult:
    batch_ids: list[str] = field(default_factory=list)
    expected_status: dict[str, str] = field(default_factory=dict)
    shipments: list[str] = field(default_factory=list)
    not_allocated: list[dict[str, Any]] = field(default_factory=list)


class Hubei2020:
    def __init__(self, client: ScenarioClient, progress: Progress = lambda _: None):
        self.client = client
        self.progress = progress
        self.result = ScenarioResult()
        self.picked: dict[str, list[str]] = {}  # recipient -> picked batch ids

    async def run(self) -> ScenarioResult:
        await self.register_world()
        await self.pledge()
        await self.receive_and_inspect()
        await self.allocate_and_pick()
        await self.ship_and_deliver()
        await self.confirm_receipts()
        return self.result

    # --- the world -------------------------------------------------------------------------------------------

    async def register_world(self) -> None:
        self.progress("registering 6 warehouses, the Xiantao relay hub, 11 recipients and 4 donors")
        for site_id, (name, city) in data.WAREHOUSES.items():
            body = {"site_id": site_id, "name": name, "kind": "warehouse", "city": city, "country": "CN"}
            await self.client.call("warehouse", "POST", "/sites", ADMIN, body)
        hub = {
            "site_id": data.HUB,
            "name": "Xiantao relay hub",
            "kind": "relay_hub",
            "city": "Xiantao",
            "country": "CN",
        }
        await self.client.call("warehouse", "POST", "/sites", ADMIN, hub)
        for recipient in data.RECIPIENTS:
            await self.client.call("recipient", "POST", "/recipients", ADMIN, _recipient_body(recipient))
        for donor_id, (name, kind, country) in data.DONORS.items():
            body = {"donor_id": donor_id, "name": name, "kind": kind, "country": country}
            await self.client.call("pledge", "POST", "/donors", donor(donor_id), body)
        for need in data.needs():
            await self.client.call("recipient", "POST", "/needs", staff(str(need["recipient_id"])), need)

    async def pledge(self) -> None:
        for pledge_id, (donor_id, purpose, lines) in data.PLEDGES.items():
            body = {"pledge_id": pledge_id, "donor_id": donor_id, "purpose": purpose, "lines": lines}
            created = await self.client.call("pledge", "POST", "/pledges", donor(donor_id), body)
            self.result.batch_ids += created["batch_ids"]
            self.progress(f"{donor_id} pledged {len(lines)} line(s): {', '.join(created['batch_ids'])}")
        total = len(self.result.batch_ids)
        await self.client.wait_for(
            "warehouse",
            "/batches?status=pledged&limit=1",
            ADMIN,
            lambda page: page["total"] == total,
            "the warehouse to learn every pledged batch",
        )

    # --- warehouse -------------------------------------------------------------------------------------------

    async def receive_and_inspect(self) -> None:
        for pledge_id, (_, _, lines) in data.PLEDGES.items():
            for number, pledged in enumerate(lines, start=1):
                await self.receive_one(f"{pledge_id}-{number}", pledged)
        self.progress(f"received and inspected {len(self.result.batch_ids)} batches; {data.REJECTED_LOT} failed N95")

    async def receive_one(self, batch_id: str, pledged: dict[str, Any]) -> None:
        site, quantity = str(pledged["warehouse_id"]), int(pledged["quantity"])
        received, reason = quantity, None
        if batch_id == data.SHORT_INTAKE[0]:
            received, reason = data.SHORT_INTAKE[1], data.SHORT_INTAKE[2]
        receipt = {
            "site_id": site,
            "quantity_received": received,
            "shortfall": quantity - received,
            "shortfall_reason": reason,
            "lot": f"LOT-{batch_id}",
            "expiry": "2030-12-31",
            "condition": "good",
        }
        await self.client.call("warehouse", "POST", f"/batches/{batch_id}/receive", operator(site), receipt)
        await self.client.call(
            "warehouse",
            "POST",
            f"/batches/{batch_id}/inspect",
            operator(site),
            _inspection(batch_id, received, pledged.get("standard")),
        )
        if batch_id == data.QUARANTINED[0]:
            release = {
                "inspector": "qc.li",
                "released": data.QUARANTINED[1],
                "rejected": 0,
                "evidence_refs": ["reinspection-2020-0129"],
                "notes": "packaging replaced",
            }
            await self.client.call(
                "warehouse", "POST", f"/batches/{batch_id}/quarantine/resolve", operator(site), release
            )
        if batch_id == data.REJECTED_LOT:
            self.result.expected_status[batch_id] = "rejected"

    async def allocate_and_pick(self) -> None:
        expected_needs = len(data.needs())
        await self.client.wait_for(
            "warehouse",
            "/needs?limit=1",
            ADMIN,
            lambda page: page["total"] == expected_needs,
            "the warehouse to learn every need",
        )
        first = await self.client.call("warehouse", "POST", "/allocations/run", ADMIN, {})
        self.result.not_allocated = list(first.get("not_allocated", []))
        batch, old, new = data.REDESIGNATED
        self.progress(f"{batch} is designated to {old}, which needs no more masks: redesignating it to {new}")
        redesignation = {
            "to_recipient_id": new,
            "approved_by": "wuhan-charity-federation:chen",
            "reason": f"{old} fully supplied; {new}'s own lot failed N95",
        }
        await self.client.call("warehouse", "POST", f"/batches/{batch}/redesignate", ADMIN, redesignation)
        second = await self.client.call("warehouse", "POST", "/allocations/run", ADMIN, {})
        allocations = list(first.get("allocations", [])) + list(second.get("allocations", []))
        self.progress(f"allocated by priority: {len(allocations)} allocations")
        for allocation in allocations:
            await self.pick(allocation)

    async def pick(self, allocation: dict[str, Any]) -> None:
        site = await self._site_of(str(allocation["batch_id"]))
        picked = await self.client.call(
            "warehouse",
            "POST",
            f"/allocations/{allocation['allocation_id']}/pick",
            operator(site),
            {"picker": "picker.wang"},
        )
        batch_id = str(picked.get("picked_batch_id") or picked.get("batch_id"))
        self.picked.setdefault(str(allocation["recipient_id"]), []).append(batch_id)
        if batch_id not in self.result.batch_ids:
            self.result.batch_ids.append(batch_id)

    async def _site_of(self, batch_id: str) -> str:
        detail = await self.client.call("warehouse", "GET", f"/batches/{batch_id}", ADMIN)
        return str(detail["state"]["warehouse_id"])

    # --- dispatch --------------------------------------------------------------------------------------------

    async def ship_and_deliver(self) -> None:
        for recipient_id, batch_ids in self.picked.items():
            by_site: dict[str, list[str]] = {}
            for batch_id in batch_ids:
                by_site.setdefault(await self._site_of(batch_id), []).append(batch_id)
            for site, batches in by_site.items():
                await self.ship(recipient_id, site, batches)
        self.progress(f"{len(self.result.shipments)} shipments delivered")

    async def ship(self, recipient_id: str, origin: str, batch_ids: list[str]) -> None:
        recipient = next(r for r in data.RECIPIENTS if r.recipient_id == recipient_id)
        via_hub = recipient.country == "CN"
        shipment_id = f"ship-{origin}-{recipient_id}"
        desk = dispatcher(origin, data.HUB)
        for batch_id in batch_ids:
            await self.client.wait_for(
                "dispatch",
                f"/batches/{batch_id}",
                ADMIN,
                lambda b: b["state"]["status"] == "picked",
                f"dispatch to see {batch_id} picked",
            )
        body = {
            "shipment_id": shipment_id,
            "recipient_id": recipient_id,
            "batch_ids": batch_ids,
            "legs": _legs(origin, recipient.site_id, via_hub),
        }
        await self.client.call("dispatch", "POST", "/shipments", desk, body)
        await self.client.call("dispatch", "POST", f"/shipments/{shipment_id}/dispatch", desk, {})
        if via_hub:
            await self.client.call("dispatch", "POST", f"/shipments/{shipment_id}/arrive", desk, {})
            handover = {"to_carrier": CARRIER_HUB, "vehicle": "XT-0129"}
            await self.client.call("dispatch", "POST", f"/shipments/{shipment_id}/handover", desk, handover)
            await self.client.call("dispatch", "POST", f"/shipments/{shipment_id}/depart", desk, {})
        await self.client.call("dispatch", "POST", f"/shipments/{shipment_id}/deliver", desk, {})
        self.result.shipments.append(shipment_id)

    # --- receipt ---------------------------------------------------------------------------------------------

    async def confirm_receipts(self) -> None:
        for recipient_id, batch_ids in self.picked.items():
            for batch_id in batch_ids:
                await self.confirm(recipient_id, batch_id)
        self.progress("every delivered batch confirmed by its recipient")
        for batch_id in self.result.batch_ids:
            self.result.expected_status.setdefault(batch_id, "in_stock")  # split parents keep their remainder
        confirmed = [b for b, s in self.result.expected_status.items() if s == "confirmed"]
        await self.client.wait_for(
            "pledge",
            "/batches?status=confirmed&limit=1",
            ADMIN,
            lambda page: page["total"] == len(confirmed),
            "the pledge service to see every receipt",
        )

    async def confirm(self, recipient_id: str, batch_id: str) -> None:
        detail = await self.client.wait_for(
            "recipient",
            f"/batches/{batch_id}",
            ADMIN,
            lambda b: b["state"]["status"] == "delivered",
            f"{batch_id} delivered",
        )
        delivered = int(detail["state"]["delivered"])
        body: dict[str, Any] = {
            "quantity_received": delivered,
            "quantity_damaged": 0,
            "signed_by": f"dr.{recipient_id}",
        }
        if batch_id == data.SHORT_DELIVERY[0]:
            _, received, damaged, reason = data.SHORT_DELIVERY
            body |= {"quantity_received": received, "quantity_damaged": damaged, "discrepancy_reason": reason}
        await self.client.call("recipient", "POST", f"/batches/{batch_id}/confirm-receipt", staff(recipient_id), body)
        self.result.expected_status[batch_id] = "confirmed"


def _recipient_body(recipient: data.RecipientData) -> dict[str, Any]:
    return {
        "recipient_id": recipient.recipient_id,
        "name": recipient.name,
        "kind": recipient.kind,
        "frontline": recipient.frontline,
        "site_id": recipient.site_id,
        "city": recipient.city,
        "country": recipient.country,
    }


def _inspection(batch_id: str, received: int, standard: object) -> dict[str, Any]:
    checked = str(standard or "visual inspection")
    body: dict[str, Any] = {
        "inspector": "qc.li",
        "standard_checked": checked,
        "accepted": received,
        "rejected": 0,
        "quarantined": 0,
        "evidence_refs": [f"qc-{batch_id}"],
    }
    if batch_id == data.REJECTED_LOT:
        body |= {"accepted": 0, "rejected": received, "notes": "filtration efficiency 82% < 95% required by N95"}
    if batch_id == data.QUARANTINED[0]:
        body |= {
            "accepted": received - data.QUARANTINED[1],
            "quarantined": data.QUARANTINED[1],
            "notes": "torn outer packaging on one pallet",
        }
    return body


def _legs(origin: str, destination: str, via_hub: bool) -> list[dict[str, Any]]:
    if not via_hub:
        return [
            {"from_site_id": origin, "to_site_id": destination, "carrier": "China Southern Cargo", "vehicle": "CZ-7071"}
        ]
    return [
        {"from_site_id": origin, "to_site_id": data.HUB, "carrier": CARRIER_LEG1, "vehicle": f"SF-{origin}"},
        {"from_site_id": data.HUB, "to_site_id": destination, "carrier": CARRIER_HUB, "vehicle": "XT-0129"},
    ]
