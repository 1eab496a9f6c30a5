"""The flow of quantities between donors, warehouses, hubs and recipients, for the Sankey picture.

Edges are summed as the log is replayed, so the memory is one counter per pair of places, however many events
moved goods between them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from services.audit.reference import ReferenceBook
from shared.domain.batch_state import BatchState
from shared.events import batch_events as ev

COLUMNS = {"donor": 0, "warehouse": 1, "hub": 2, "recipient": 3, "loss": 4}
LOSS_LABELS = {
    "shortfall": "Shortfall (never arrived)",
    "rejected": "Rejected at inspection",
    "written-off": "Written off in stock",
    "lost-in-transit": "Written off in transit",
}


@dataclass(slots=True)
class FlowBook:
    edges: Counter[tuple[str, str]] = field(default_factory=Counter)
    hubs: set[str] = field(default_factory=set)
    warehouses: set[str] = field(default_factory=set)
    site_recipient: dict[str, str] = field(default_factory=dict)

    def apply(self, payload: ev.Payload, before: BatchState | None, after: BatchState, last_site: str | None) -> None:
        """`last_site`: the site the batch was last at or left, to which a transit loss is attributed."""
        if isinstance(payload, ev.BatchReceived):
            self._received(payload, after)
        elif isinstance(payload, ev.BatchInspected | ev.QuarantineResolved) and payload.rejected:
            self._add(f"site:{after.location_site_id}", "loss:rejected", payload.rejected)
        elif isinstance(payload, ev.BatchWrittenOff):
            stage_loss = "lost-in-transit" if payload.stage is ev.WriteOffStage.TRANSIT else "written-off"
            site = last_site if payload.stage is ev.WriteOffStage.TRANSIT else after.location_site_id
            self._add(f"site:{site or after.warehouse_id}", f"loss:{stage_loss}", payload.quantity)
        elif isinstance(payload, ev.BatchDispatched):
            self._add(f"site:{payload.from_site_id}", f"site:{payload.to_site_id}", payload.quantity)
        elif isinstance(payload, ev.BatchArrivedAtHub):
            self.hubs.add(payload.hub_site_id)
        elif isinstance(payload, ev.BatchDepartedHub):
            self._add(f"site:{payload.hub_site_id}", f"site:{payload.to_site_id}", after.in_transit)
        elif isinstance(payload, ev.BatchDelivered):
            self.site_recipient[payload.site_id] = payload.recipient_id

    def _received(self, payload: ev.BatchReceived, after: BatchState) -> None:
        self.warehouses.add(payload.site_id)
        self._add(f"donor:{after.donor_id}", f"site:{payload.site_id}", payload.quantity_received)
        if payload.shortfall:
            self._add(f"donor:{after.donor_id}", "loss:shortfall", payload.shortfall)

    def _add(self, source: str, target: str, quantity: int) -> None:
        if quantity > 0:
            self.edges[(source, target)] += quantity

    def graph(self, reference: ReferenceBook) -> dict[str, Any]:
        """Nodes with a kind, label and column; links between nodes. A recipient's facility becomes the recipient."""
        links: Counter[tuple[str, str]] = Counter()
        for (source, target), quantity in self.edges.items():
            links[(self._node(source, reference), self._node(target, reference))] += quantity
        names = {name for pair in links for name in pair}
        nodes = [self._describe(name, reference) for name in sorted(names)]
        return {
            "nodes": nodes,
            "links": [{"source": s, "target": t, "quantity": q} for (s, t), q in sorted(links.items())],
        }

    def _node(self, name: str, reference: ReferenceBook) -> str:
        kind, _, ident = name.partition(":")
        if kind != "site":
            return name
        recipient = self.site_recipient.get(ident) or reference.recipient_of_site(ident)
        return f"recipient:{recipient}" if recipient else name

    def _describe(self, name: str, reference: ReferenceBook) -> dict[str, Any]:
        kind, _, ident = name.partition(":")
        if kind == "donor":
            return {"id": name, "kind": "donor", "label": reference.donor_name(ident), "column": 0}
        if kind == "recipient":
            return {"id": name, "kind": "recipient", "label": reference.recipient_name(ident), "column": 3}
        if kind == "loss":
            return {"id": name, "kind": "loss", "label": LOSS_LABELS.get(ident, ident), "column": 4}
        site_kind = self._site_kind(ident, reference)
        return {"id": name, "kind": site_kind, "label": reference.site_name(ident), "column": COLUMNS[site_kind]}

    def _site_kind(self, site_id: str, reference: ReferenceBook) -> str:
        site = reference.sites.get(site_id)
        if site is not None:
            return {"warehouse": "warehouse", "relay_hub": "hub"}.get(site.kind, "recipient")
        if site_id in self.hubs and site_id not in self.warehouses:
            return "hub"
        return "warehouse"
