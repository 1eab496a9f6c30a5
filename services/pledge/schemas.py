"""Request and response bodies of the pledge API, with examples for the OpenAPI document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.events.batch_events import Ident, Quantity, ShortText, Text, Unit


class DonorIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"donor_id": "xiaomi", "name": "Xiaomi Group", "kind": "company", "country": "CN"}]
        },
    )
    donor_id: Ident | None = Field(None, description="Chosen id; generated when left out.")
    name: ShortText
    kind: ShortText = "company"
    country: ShortText | None = None


class DonorOut(BaseModel):
    donor_id: str
    name: str
    kind: str
    country: str | None
    registered_at: str


class PledgeLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item: Ident = Field(description="Catalogue item, e.g. n95-mask.")
    category: ShortText = "medical"
    quantity: Quantity
    unit: Unit
    standard: ShortText | None = Field(None, description="Standard the goods must meet, e.g. N95, EN 14126.")
    warehouse_id: Ident = Field(description="Warehouse the goods will be delivered to.")
    designated_recipient_id: Ident | None = Field(None, description="Recipient this line is designated to.")


PLEDGE_EXAMPLE: dict[str, Any] = {
    "pledge_id": "xiaomi-2020-01",
    "donor_id": "xiaomi",
    "purpose": "Frontline protection for Wuhan hospitals",
    "designated_recipient_id": "jinyintan-hospital",
    "lines": [
        {"item": "n95-mask", "quantity": 20000, "unit": "piece", "standard": "N95", "warehouse_id": "wh-wuhan-1"},
        {
            "item": "protective-suit",
            "quantity": 5000,
            "unit": "piece",
            "standard": "EN 14126",
            "warehouse_id": "wh-wuhan-2",
            "designated_recipient_id": "tongji-hospital",
        },
    ],
}


class PledgeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [PLEDGE_EXAMPLE]})
    pledge_id: Ident | None = Field(None, description="Chosen id; generated when left out.")
    donor_id: Ident
    purpose: Text | None = None
    designated_recipient_id: Ident | None = Field(None, description="Default designation for every line.")
    funds_amount: float | None = Field(None, ge=0, le=1e13)
    funds_currency: ShortText | None = None
    lines: list[PledgeLineIn] = Field(min_length=1, max_length=500)


class PledgeCreated(BaseModel):
    pledge_id: str
    batch_ids: list[str]


class PledgeLineOut(BaseModel):
    line_no: int
    batch_id: str
    item: str
    quantity: int
    unit: str
    status: str | None = Field(description="The batch's current state, from consumed events.")


class PledgeOut(BaseModel):
    pledge_id: str
    donor_id: str
    purpose: str | None
    funds_amount: float | None
    funds_currency: str | None
    registered_at: str
    lines: list[PledgeLineOut]


class AmendLineIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"quantity": 18000, "reason": "one container short"}]}
    )
    quantity: Quantity | None = None
    warehouse_id: Ident | None = None
    designated_recipient_id: Ident | None = None
    reason: Text


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "donor withdrew"}]})
    reason: Text


class DonorBatch(BaseModel):
    """Where one of a donor's batches is now, and what was confirmed received."""

    batch_id: str
    pledge_id: str
    parent_batch_id: str | None
    item: str
    status: str
    site_id: str | None
    shipment_id: str | None
    recipient_id: str | None
    quantity_pledged: int
    delivered: int
    confirmed_received: int
    confirmed_damaged: int
    written_off: int
