"""Request and response bodies of the recipient API, with examples for the OpenAPI document.

Deadlines are read as strict RFC 3339 text (date, time and offset), not through pydantic's lenient datetime
parsing: a bare date, a Unix number or a time without an offset would otherwise be guessed at, and a need's
deadline decides what a warehouse ships first.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from shared.events.batch_events import Count, Ident, Quantity, ShortText, Text
from shared.events.reference_events import Priority, RecipientKind

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")
DEADLINE_HINT = "use an RFC 3339 timestamp with a time zone, e.g. 2020-02-05T18:00:00+08:00 or 2020-02-05T10:00:00Z"


def parse_rfc3339(value: object) -> datetime:
    """Accept only full RFC 3339 timestamps; the error says what was wrong and what to send instead."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"deadline has no time zone; {DEADLINE_HINT}")
        return value
    if not isinstance(value, str) or not RFC3339.match(value.strip()):
        raise ValueError(f"deadline {str(value)[:60]!r} is not an RFC 3339 timestamp; {DEADLINE_HINT}")
    text = value.strip()
    try:
        return datetime.fromisoformat(text[:-1] + "+00:00" if text[-1] in "Zz" else text)
    except ValueError:
        raise ValueError(f"deadline {text!r} is not a real calendar date and time; {DEADLINE_HINT}") from None


Deadline = Annotated[datetime, BeforeValidator(parse_rfc3339)]
CountryCode = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z]{2}$", to_upper=True),
    Field(description="ISO 3166-1 alpha-2 country code, e.g. CN, IT, ES, BE, US.", examples=["CN"]),
]


class NeedStatus(StrEnum):
    OPEN = "open"
    FULFILLED = "fulfilled"


class IncomingStatus(StrEnum):
    """The batch states in which goods are on their way to, or have reached, a recipient."""

    ALLOCATED = "allocated"
    PICKED = "picked"
    IN_TRANSIT = "in_transit"
    AT_HUB = "at_hub"
    DELIVERED = "delivered"
    CONFIRMED = "confirmed"


# --- recipients ------------------------------------------------------------------------------------------

RECIPIENT_EXAMPLES: list[Any] = [
    {
        "recipient_id": "jinyintan-hospital",
        "name": "Wuhan Jinyintan Hospital",
        "kind": "hospital",
        "frontline": True,
        "site_id": "jinyintan-receiving",
        "city": "Wuhan",
        "country": "CN",
    },
    {
        "recipient_id": "huanggang-health-committee",
        "name": "Huanggang Municipal Health Committee",
        "kind": "health_committee",
        "frontline": False,
        "site_id": "huanggang-depot",
        "city": "Huanggang",
        "country": "CN",
    },
    {
        "recipient_id": "protezione-civile",
        "name": "Dipartimento della Protezione Civile",
        "kind": "civil_protection",
        "frontline": False,
        "site_id": "protezione-civile-rome",
        "city": "Rome",
        "country": "IT",
    },
]


class RecipientIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": RECIPIENT_EXAMPLES})
    recipient_id: Ident | None = Field(None, description="Chosen id; generated when left out.")
    name: ShortText
    kind: RecipientKind
    frontline: bool = Field(description="True for hospitals treating patients on the front line of the outbreak.")
    site_id: Ident = Field(description="Id of the recipient's receiving facility; registered as a site with it.")
    city: ShortText
    country: CountryCode


class RecipientOut(BaseModel):
    recipient_id: str
    name: str
    kind: RecipientKind
    frontline: bool
    site_id: str
    city: str
    country: str
    registered_at: str


# --- needs -----------------------------------------------------------------------------------------------

NEED_EXAMPLES: list[Any] = [
    {
        "need_id": "jinyintan-n95-001",
        "recipient_id": "jinyintan-hospital",
        "item": "n95-mask",
        "quantity": 20000,
        "priority": "critical",
        "deadline": "2020-02-05T18:00:00+08:00",
    },
    {"recipient_id": "huanggang-health-committee", "item": "protective-suit", "quantity": 3000, "priority": "high"},
]


class NeedIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": NEED_EXAMPLES})
    need_id: Ident | None = Field(None, description="Chosen id; generated when left out.")
    recipient_id: Ident
    item: Ident = Field(description="Catalogue item, e.g. n95-mask.")
    quantity: Quantity
    priority: Priority
    deadline: Deadline | None = Field(None, description=f"When the goods are needed by; {DEADLINE_HINT}.")
    historical: bool = Field(
        False,
        description=(
            "Set (admin only) when recording a need after the fact, e.g. backfilling the 2020 record: only then "
            "may the deadline lie in the past."
        ),
    )


class NeedReceiptOut(BaseModel):
    batch_id: str
    quantity_received: int
    event_id: str
    confirmed_at: str


class NeedOut(BaseModel):
    need_id: str
    recipient_id: str
    item: str
    quantity: int
    received: int = Field(description="Received in good order so far, over all confirmed batches for this need.")
    remaining: int = Field(description="Still to come; 0 once the need is fulfilled.")
    priority: Priority
    deadline: datetime | None
    status: NeedStatus
    registered_at: str
    fulfilled_at: str | None


class NeedDetail(NeedOut):
    receipts: list[NeedReceiptOut] = Field(description="The confirmed batches counted toward this need.")


# --- incoming batches and receipts -----------------------------------------------------------------------


class IncomingBatch(BaseModel):
    """A batch on its way to, or already at, a recipient."""

    batch_id: str
    status: IncomingStatus
    item: str
    pledge_id: str
    donor_id: str
    need_id: str | None = Field(description="The need the batch was allocated for.")
    quantity: int = Field(description="What is headed for this recipient in the batch's current state.")
    delivered: int
    confirmed_received: int
    confirmed_damaged: int
    shipment_id: str | None
    site_id: str | None = Field(description="Where the batch is now (null while on the road).")
    updated_at: str


CONFIRM_EXAMPLES: list[Any] = [
    {"quantity_received": 20000, "quantity_damaged": 0, "signed_by": "Dr. Zhang, head of logistics"},
    {
        "quantity_received": 19400,
        "quantity_damaged": 400,
        "signed_by": "Dr. Zhang, head of logistics",
        "discrepancy_reason": "400 masks crushed in one carton; 200 missing from the pallet count",
    },
]


class ConfirmReceiptIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": CONFIRM_EXAMPLES})
    quantity_received: Count = Field(description="Units received in good order.")
    quantity_damaged: Count = Field(0, description="Units that arrived damaged.")
    signed_by: ShortText = Field(description="Who signed for the goods at the recipient.")
    discrepancy_reason: Text | None = Field(
        None, description="Required whenever received + damaged differ from what was delivered, or any are damaged."
    )


class ReceiptOut(BaseModel):
    batch_id: str
    event_id: str
    recipient_id: str
    status: str
    delivered: int
    quantity_received: int
    quantity_damaged: int
    need: NeedOut | None = Field(description="The need this receipt counted toward, after counting it.")
    need_fulfilled_event_id: str | None = Field(description="Set when this receipt fulfilled the need.")
