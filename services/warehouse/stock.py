"""The stock view: per site, item, lot and expiry, what is on hand, reserved, free and quarantined.

It is an aggregate over the batch states the fold rebuilt (the batch view), never a counter of its own, so it
cannot drift from the events. Pure: the caller reads the rows, this module only adds them up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from shared.domain.batch_state import BatchStatus

# Statuses in which a batch, or part of it, is still inside a warehouse.
STOCK_STATUSES = (
    BatchStatus.RECEIVED,
    BatchStatus.QUARANTINED,
    BatchStatus.IN_STOCK,
    BatchStatus.ALLOCATED,
    BatchStatus.SPLIT,
    BatchStatus.PICKED,
)

StockKey = tuple[str, str, str | None, date | None]


@dataclass
class StockLine:
    site_id: str
    item: str
    unit: str
    lot: str | None
    expiry: date | None
    on_hand: int = 0
    reserved: int = 0
    quarantined: int = 0
    awaiting_inspection: int = 0
    batches: int = 0

    @property
    def free(self) -> int:
        return self.on_hand - self.reserved

    def expired(self, today: date) -> bool:
        return self.expiry is not None and self.expiry < today


@dataclass(frozen=True, slots=True)
class BatchStock:
    """One batch's contribution; a picked batch is wholly reserved (it waits for dispatch, no longer free)."""

    on_hand: int
    reserved: int
    quarantined: int
    awaiting_inspection: int

    @classmethod
    def of(cls, state: dict[str, Any]) -> BatchStock:
        status = BatchStatus(state["status"])
        on_hand = int(state["on_hand"])
        reserved = on_hand if status is BatchStatus.PICKED else int(state["reserved"])
        awaiting = int(state["quantity_received"]) if status is BatchStatus.RECEIVED else 0
        return cls(on_hand, reserved, int(state["quarantined"]), awaiting)

    @property
    def empty(self) -> bool:
        return not (self.on_hand or self.quarantined or self.awaiting_inspection)


def parse_expiry(value: Any) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) else value if isinstance(value, date) else None


def aggregate(site_and_states: Iterable[tuple[str, dict[str, Any]]]) -> list[StockLine]:
    """Sum batch states into lines, sorted by site, item, then the lot expiring first."""
    lines: dict[StockKey, StockLine] = {}
    for site_id, state in site_and_states:
        contribution = BatchStock.of(state)
        if contribution.empty:
            continue
        expiry = parse_expiry(state.get("expiry"))
        key = (site_id, state["item"], state.get("lot"), expiry)
        line = lines.setdefault(key, StockLine(site_id, state["item"], state["unit"], state.get("lot"), expiry))
        line.on_hand += contribution.on_hand
        line.reserved += contribution.reserved
        line.quarantined += contribution.quarantined
        line.awaiting_inspection += contribution.awaiting_inspection
        line.batches += 1
    return sorted(lines.values(), key=lambda s: (s.site_id, s.item, s.expiry or date.max, s.lot or ""))
