"""Request and response bodies of the warehouse API, with examples for the OpenAPI document."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.events.batch_events import Condition, Count, Ident, Quantity, ShortText, Text
from shared.events.reference_events import SiteKind


def _examples(*examples: dict[str, Any]) -> ConfigDict:
    return ConfigDict(extra="forbid", json_schema_extra={"examples": list(examples)})


# --- sites ---------------------------------------------------------------------------------------------------


class WarehouseSiteKind(StrEnum):
    """The sites this service registers; recipients' facilities are registered by the recipient service."""

    WAREHOUSE = SiteKind.WAREHOUSE.value
    RELAY_HUB = SiteKind.RELAY_HUB.value


class SiteIn(BaseModel):
    model_config = _examples(
        {
            "site_id": "wh-wuhan-1",
            "name": "Xiaomi Wuhan warehouse 1",
            "kind": "warehouse",
            "city": "Wuhan",
            "country": "CN",
        },
        {
            "site_id": "hub-xiantao",
            "name": "Xiantao relay hub",
            "kind": "relay_hub",
            "city": "Xiantao",
            "country": "CN",
        },
    )
    site_id: Ident | None = Field(None, description="Chosen id; generated when left out.")
    name: ShortText
    kind: WarehouseSiteKind
    city: ShortText
    country: ShortText


class SiteOut(BaseModel):
    site_id: str
    name: str
    kind: str
    city: str | None
    country: str | None
    recipient_id: str | None
    registered_at: str


class ExpectedBatch(BaseModel):
    """A pledged batch the warehouse is waiting for."""

    batch_id: str
    pledge_id: str
    donor_id: str
    item: str
    quantity_pledged: int
    unit: str
    standard: str | None
    designated_recipient_id: str | None
    updated_at: str = Field(description="Time of the batch's latest event (its pledge, or an amendment of it).")


# --- batch commands ------------------------------------------------------------------------------------------


class ReceiveIn(BaseModel):
    model_config = _examples(
        {
            "site_id": "wh-wuhan-1",
            "quantity_received": 20000,
            "lot": "XM-2001",
            "expiry": "2022-12-31",
            "condition": "good",
        },
        {
            "site_id": "wh-wuhan-1",
            "quantity_received": 19500,
            "shortfall": 500,
            "shortfall_reason": "one carton missing on arrival",
            "lot": "XM-2001",
            "expiry": "2022-12-31",
            "condition": "damaged_packaging",
        },
    )
    site_id: Ident = Field(description="The warehouse receiving; must be the one the line was pledged to.")
    quantity_received: Count
    shortfall: Count = Field(0, description="Pledged but not delivered; received + shortfall = pledged.")
    shortfall_reason: Text | None = Field(None, description="Required when shortfall > 0.")
    lot: ShortText | None = None
    expiry: date | None = None
    condition: Condition = Condition.UNKNOWN


class InspectIn(BaseModel):
    model_config = _examples(
        {
            "inspector": "li.na",
            "standard_checked": "N95",
            "accepted": 19000,
            "rejected": 200,
            "quarantined": 300,
            "evidence_refs": ["photo://qc/XM-2001/1"],
            "notes": "300 with unreadable certification labels",
        },
    )
    inspector: ShortText
    standard_checked: ShortText = Field(description="Must be the standard the donor declared for the line.")
    accepted: Count
    rejected: Count
    quarantined: Count
    evidence_refs: list[ShortText] = Field(default_factory=list, max_length=50)
    notes: Text | None = None


class ResolveQuarantineIn(BaseModel):
    model_config = _examples(
        {
            "inspector": "li.na",
            "released": 250,
            "rejected": 50,
            "evidence_refs": ["cert://GB2626-2006/XM"],
            "notes": "certificates received from the manufacturer",
        },
    )
    inspector: ShortText
    released: Count
    rejected: Count
    evidence_refs: list[ShortText] = Field(default_factory=list, max_length=50)
    notes: Text | None = None


class RedesignateIn(BaseModel):
    model_config = _examples(
        {
            "to_recipient_id": "jinyintan-hospital",
            "approved_by": "wuhan-charity-federation",
            "reason": "Tongji's need for masks is covered; Jinyintan has none left",
        },
    )
    to_recipient_id: Ident
    approved_by: ShortText = Field(description="Who approved the change of designation (recorded in the event).")
    reason: Text


class StockWriteOffReason(StrEnum):
    EXPIRED = "expired"
    DAMAGED = "damaged"
    LOST = "lost"


class WriteOffIn(BaseModel):
    model_config = _examples({"quantity": 120, "reason": "damaged", "note": "water damage after roof leak"})
    quantity: Quantity
    reason: StockWriteOffReason
    note: Text


class BatchCommandResult(BaseModel):
    """The batch after the command, as the fold rebuilds it, and the events written."""

    batch_id: str
    status: str
    event_ids: list[str]
    state: dict[str, Any]
    allowed_next: list[str]


# --- allocation ----------------------------------------------------------------------------------------------


class AllocationRunIn(BaseModel):
    model_config = _examples({}, {"site_id": "wh-wuhan-1", "item": "n95-mask"})
    site_id: Ident | None = Field(None, description="Only stock at this site; operators default to their sites.")
    item: Ident | None = Field(None, description="Only this item.")


class AllocationMade(BaseModel):
    allocation_id: str
    batch_id: str
    need_id: str
    recipient_id: str
    item: str
    quantity: int
    priority_rank: int | None = Field(description="The need's place in the priority order of this run.")


class UnallocatedStock(BaseModel):
    batch_id: str
    item: str
    quantity: int
    reason: str = Field(description="A code: quarantined, expired, no_open_need, needs_covered, ...")
    message: str


class AllocationRunResult(BaseModel):
    allocations: list[AllocationMade]
    not_allocated: list[UnallocatedStock] = Field(
        description="Every batch whose free or quarantined stock was not (fully) allocated, and why."
    )


class AllocateIn(BaseModel):
    model_config = _examples({"need_id": "need-jinyintan-n95-1", "quantity": 5000})
    need_id: Ident
    quantity: Quantity


class AllocationOut(BaseModel):
    allocation_id: str
    batch_id: str = Field(description="The batch holding it now; after a partial pick, the child batch.")
    root_batch_id: str | None
    need_id: str
    recipient_id: str
    item: str
    site_id: str | None
    quantity: int
    status: str = Field(description="open, picked, in_transit, delivered, confirmed or written_off.")
    updated_at: str


class PickIn(BaseModel):
    model_config = _examples({"picker": "zhang.wei"})
    picker: ShortText


class PickResult(BaseModel):
    allocation_id: str
    picked_batch_id: str = Field(description="The batch that was picked: the batch itself or the new child.")
    split: bool
    parent: BatchCommandResult
    child: BatchCommandResult | None


class NeedOut(BaseModel):
    need_id: str
    recipient_id: str
    recipient_name: str | None
    recipient_kind: str | None
    frontline: bool
    item: str
    priority: str
    deadline: str | None
    status: str
    quantity: int
    allocated: int
    remaining: int
    registered_at: str


# --- stock ---------------------------------------------------------------------------------------------------


class StockRow(BaseModel):
    site_id: str
    item: str
    unit: str
    lot: str | None
    expiry: date | None
    expired: bool
    on_hand: int = Field(description="Accepted and usable, including what is reserved or picked.")
    reserved: int = Field(description="Allocated to needs or already picked for dispatch.")
    free: int
    quarantined: int
    awaiting_inspection: int
    batches: int
