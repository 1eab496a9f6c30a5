"""Checks a finished scenario: every batch, rebuilt by each service from events, is where the scenario expects,
and every conservation rule holds for it. Independent of the auditor, so the two can check each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.scenario.client import Actor, ScenarioClient, ScenarioError
from shared.scenario.hubei2020 import ADMIN, ScenarioResult

SERVICES = ("pledge", "warehouse", "dispatch", "recipient")


@dataclass
class BatchCheck:
    batch_id: str
    expected: str
    seen: dict[str, str]
    state: dict[str, Any]
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations and all(status == self.expected for status in self.seen.values())


def conservation_violations(state: dict[str, Any]) -> list[str]:
    """The rules of DESIGN.md, on one batch's folded state."""
    problems: list[str] = []
    if state["parent_batch_id"] is None and state["quantity_received"]:
        if state["quantity_received"] + state["shortfall"] != state["quantity_pledged"]:
            problems.append("received + shortfall != pledged")
        if state["accepted"] + state["rejected"] + state["quarantined"] != state["quantity_received"]:
            problems.append("accepted + rejected + quarantined != received")
    leaving = state["on_hand"] + state["split_out"] + state["written_off_stock"] + state["dispatched"]
    if state["inspected"] and leaving != state["accepted"]:
        problems.append("children + remainder + write-offs + dispatched != accepted")
    if state["dispatched"] != state["delivered"] + state["written_off_transit"] + state["in_transit"]:
        problems.append("dispatched != delivered + written off in transit + in transit")
    return problems


async def check_batch(client: ScenarioClient, batch_id: str, expected: str, reader: Actor = ADMIN) -> BatchCheck:
    seen: dict[str, str] = {}
    state: dict[str, Any] = {}
    for service in SERVICES:
        detail = await _settled(client, service, batch_id, expected, reader)
        state = detail["state"]
        seen[service] = str(state["status"])
    return BatchCheck(batch_id, expected, seen, state, conservation_violations(state))


async def _settled(client: ScenarioClient, service: str, batch_id: str, expected: str, reader: Actor) -> Any:
    """Events reach each service in its own time: wait for the expected state, then report what is there."""
    try:
        return await client.wait_for(
            service,
            f"/batches/{batch_id}",
            reader,
            lambda b: b["state"]["status"] == expected,
            f"{batch_id} on {service}",
        )
    except ScenarioError:
        return await client.call(service, "GET", f"/batches/{batch_id}", reader)


async def verify(client: ScenarioClient, result: ScenarioResult) -> list[BatchCheck]:
    return [await check_batch(client, batch_id, result.expected_status[batch_id]) for batch_id in result.batch_ids]
