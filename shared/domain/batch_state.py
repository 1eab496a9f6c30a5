"""The state of one batch, as the fold rebuilds it; a frozen value so that no handler can mutate it by accident."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum


class BatchStatus(StrEnum):
    PLEDGED = "pledged"
    CANCELLED = "cancelled"
    RECEIVED = "received"
    QUARANTINED = "quarantined"
    IN_STOCK = "in_stock"
    ALLOCATED = "allocated"
    REJECTED = "rejected"
    SPLIT = "split"
    PICKED = "picked"
    IN_TRANSIT = "in_transit"
    AT_HUB = "at_hub"
    DELIVERED = "delivered"
    CONFIRMED = "confirmed"
    WRITTEN_OFF = "written_off"


@dataclass(frozen=True, slots=True)
class Allocation:
    allocation_id: str
    need_id: str
    recipient_id: str
    quantity: int


@dataclass(frozen=True, slots=True)
class BatchState:
    """Quantities are kept as running totals so that every conservation rule can be checked from the state."""

    batch_id: str
    status: BatchStatus
    pledge_id: str
    donor_id: str
    item: str
    category: str
    unit: str
    standard: str | None
    quantity_pledged: int
    warehouse_id: str
    designated_recipient_id: str | None = None
    parent_batch_id: str | None = None
    root_batch_id: str | None = None
    # intake and inspection
    quantity_received: int = 0
    shortfall: int = 0
    accepted: int = 0
    rejected: int = 0
    quarantined: int = 0
    inspected: bool = False
    lot: str | None = None
    expiry: date | None = None
    # stock
    on_hand: int = 0
    allocations: tuple[Allocation, ...] = ()
    children: tuple[tuple[str, int], ...] = ()
    split_out: int = 0
    written_off_stock: int = 0
    # movement
    picked_allocation: Allocation | None = None
    dispatched: int = 0
    in_transit: int = 0
    written_off_transit: int = 0
    delivered: int = 0
    shipment_id: str | None = None
    carrier: str | None = None
    location_site_id: str | None = None
    destination_site_id: str | None = None
    delivered_to_recipient_id: str | None = None
    # receipt
    confirmed_received: int = 0
    confirmed_damaged: int = 0
    redesignations: tuple[tuple[str | None, str, str], ...] = field(default=())
    version: int = 0

    @property
    def reserved(self) -> int:
        return sum(allocation.quantity for allocation in self.allocations)

    @property
    def free(self) -> int:
        """Usable stock not yet promised to anyone; a picked batch has none, whatever it still holds."""
        if self.picked_allocation is not None:
            return 0
        return self.on_hand - self.reserved

    @property
    def allocated_recipient_id(self) -> str | None:
        if self.picked_allocation is not None:
            return self.picked_allocation.recipient_id
        return self.allocations[0].recipient_id if self.allocations else None

    def allocation(self, allocation_id: str) -> Allocation | None:
        return next((a for a in self.allocations if a.allocation_id == allocation_id), None)
