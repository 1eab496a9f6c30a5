"""Request and response bodies of the dispatch API, with examples for the OpenAPI document."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.events.batch_events import Ident, Quantity, ShortText, Text

LEG_EXAMPLES: list[dict[str, Any]] = [
    {"from_site_id": "wh-wuhan-1", "to_site_id": "hub-xiantao", "carrier": "SF Express", "vehicle": "E-12345"},
    {"from_site_id": "hub-xiantao", "to_site_id": "site-jinyintan", "carrier": "JD Logistics", "vehicle": "E-67890"},
]

SHIPMENT_EXAMPLE: dict[str, Any] = {
    "shipment_id": "shp-2020-02-01",
    "recipient_id": "jinyintan-hospital",
    "batch_ids": ["xiaomi-2020-01-1", "xiaomi-2020-01-2"],
    "legs": LEG_EXAMPLES,
}


class LegIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [LEG_EXAMPLES[0]]})
    from_site_id: Ident = Field(description="Where the leg starts: the warehouse for leg 1, else a relay hub.")
    to_site_id: Ident = Field(description="A relay hub, or the recipient's facility for the last leg.")
    carrier: ShortText = Field(description="Who carries the goods on this leg.")
    vehicle: ShortText | None = Field(None, description="Truck plate, flight or train number.")


class ShipmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [SHIPMENT_EXAMPLE]})
    shipment_id: Ident | None = Field(None, description="Chosen id; generated when left out.")
    recipient_id: Ident = Field(description="Every batch must be picked for this recipient.")
    batch_ids: list[Ident] = Field(min_length=1, max_length=500, description="Picked batches, all at leg 1's origin.")
    legs: list[LegIn] = Field(min_length=1, max_length=20, description="Warehouse -> relay hub(s) -> recipient.")


class HandoverIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"to_carrier": "China Post EMS", "vehicle": "E-24680"}]}
    )
    to_carrier: ShortText = Field(description="The carrier that takes the goods over at the hub.")
    vehicle: ShortText | None = None


class TransitLoss(StrEnum):
    LOST = "lost"
    DAMAGED = "damaged"


class WriteOffIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "batch_id": "xiaomi-2020-01-1",
                    "quantity": 200,
                    "reason": "damaged",
                    "note": "two cartons soaked in rain during the Xiantao transfer",
                }
            ]
        },
    )
    batch_id: Ident = Field(description="A batch of this shipment.")
    quantity: Quantity = Field(description="At most what is still in transit for this batch.")
    reason: TransitLoss
    note: Text = Field(description="What happened, for the audit trail.")


class LegOut(BaseModel):
    leg_no: int
    from_site_id: str
    to_site_id: str
    carrier: str = Field(description="The planned carrier.")
    vehicle: str | None
    status: str = Field(description="pending, in_transit, arrived or delivered.")
    actual_carrier: str | None = Field(description="Who actually carried it, after any handover.")
    actual_vehicle: str | None
    departed_at: str | None
    arrived_at: str | None


class ShipmentBatchOut(BaseModel):
    batch_id: str
    status: str = Field(description="The batch's current state, from the batch view.")
    item: str | None
    site_id: str | None
    dispatched: int
    in_transit: int
    delivered: int
    written_off_transit: int


class ShipmentSummary(BaseModel):
    shipment_id: str
    recipient_id: str
    status: str = Field(description="planned, in_transit, at_hub, delivered, or written_off if nothing is left.")
    origin_site_id: str
    destination_site_id: str
    current_leg_no: int
    leg_count: int
    carrier: str | None = Field(description="Who holds the goods now (after dispatch).")
    vehicle: str | None
    batch_ids: list[str]
    planned_by: str
    planned_at: str
    updated_at: str


class ShipmentOut(ShipmentSummary):
    current_site_id: str | None = Field(description="The warehouse or hub where the goods are; null in transit.")
    allowed_next: list[str] = Field(description="The movement commands the shipment accepts now.")
    legs: list[LegOut]
    batches: list[ShipmentBatchOut]


class MovedBatch(BaseModel):
    batch_id: str
    event_id: str
    event_type: str


class MovementOut(BaseModel):
    shipment_id: str
    action: str
    status: str
    current_leg_no: int
    carrier: str | None
    vehicle: str | None
    allowed_next: list[str]
    events: list[MovedBatch] = Field(description="One event per batch that moved, in the order written.")


class ReadyBatch(BaseModel):
    batch_id: str
    item: str
    unit: str
    standard: str | None
    quantity: int = Field(description="What will ship: everything on hand.")
    site_id: str | None
    recipient_id: str | None
    allocation_id: str | None
    need_id: str | None
    pledge_id: str
    donor_id: str
    lot: str | None
    expiry: str | None
    planned_shipment_id: str | None = Field(description="The open shipment it is already planned on, if any.")


class ErrorDetail(BaseModel):
    code: str = Field(description="not_found, conflict, rule_violation, invalid_request, forbidden, ...")
    message: str = Field(description="What is wrong and how to fix it.")
    current_state: str | None = Field(None, description="The shipment's or batch's state when refused.")
    allowed: list[str] | None = Field(None, description="What the shipment or batch accepts next.")


class ErrorOut(BaseModel):
    """Every refusal has this shape (see shared/web/errors.py)."""

    error: ErrorDetail
