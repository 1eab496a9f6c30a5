"""Payloads of events about the things batches refer to: donors, pledges, sites, recipients, needs, shipments.

They travel on the reference topic, keyed by the entity's id, so that every service can build the lookups it
needs (a warehouse learns needs, dispatch learns sites) without reading another service's database.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from shared.events.batch_events import Ident, Payload, Quantity, ShortText, Text, Unit


class SiteKind(StrEnum):
    WAREHOUSE = "warehouse"
    RELAY_HUB = "relay_hub"
    RECIPIENT_FACILITY = "recipient_facility"


class RecipientKind(StrEnum):
    HOSPITAL = "hospital"
    HEALTH_COMMITTEE = "health_committee"
    CIVIL_PROTECTION = "civil_protection"


class Priority(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class DonorRegistered(Payload):
    """A company, association or person that pledges."""

    event_type: ClassVar[str] = "org.aidtrail.donor.registered.v1"
    donor_id: Ident
    name: ShortText
    kind: ShortText = "company"
    country: ShortText | None = None


class PledgeLineRef(Payload):
    """One line of a pledge and the batch it became."""

    batch_id: Ident
    line_no: int = Field(ge=1)
    item: Ident
    quantity: Quantity
    unit: Unit


class PledgeRegistered(Payload):
    """A pledge and the batches its lines became."""

    event_type: ClassVar[str] = "org.aidtrail.pledge.registered.v1"
    pledge_id: Ident
    donor_id: Ident
    purpose: Text | None = None
    funds_amount: float | None = Field(default=None, ge=0)
    funds_currency: ShortText | None = None
    lines: list[PledgeLineRef] = Field(min_length=0, max_length=500)


class SiteRegistered(Payload):
    """A warehouse, relay hub or recipient facility."""

    event_type: ClassVar[str] = "org.aidtrail.site.registered.v1"
    site_id: Ident
    name: ShortText
    kind: SiteKind
    city: ShortText | None = None
    country: ShortText | None = None
    recipient_id: Ident | None = None


class RecipientRegistered(Payload):
    """A hospital, health committee or civil-protection agency, frontline or not."""

    event_type: ClassVar[str] = "org.aidtrail.recipient.registered.v1"
    recipient_id: Ident
    name: ShortText
    kind: RecipientKind
    frontline: bool
    site_id: Ident
    city: ShortText | None = None
    country: ShortText | None = None


class NeedRegistered(Payload):
    """A recipient's request for an item, with priority and deadline."""

    event_type: ClassVar[str] = "org.aidtrail.need.registered.v1"
    need_id: Ident
    recipient_id: Ident
    item: Ident
    quantity: Quantity
    priority: Priority
    deadline: datetime | None = None


class NeedFulfilled(Payload):
    """Confirmed receipts covered a need in full."""

    event_type: ClassVar[str] = "org.aidtrail.need.fulfilled.v1"
    need_id: Ident
    recipient_id: Ident
    quantity_received: int = Field(ge=0)


class ShipmentLeg(Payload):
    """One leg of a shipment, with its carrier."""

    leg_no: int = Field(ge=1, le=100)
    from_site_id: Ident
    to_site_id: Ident
    carrier: ShortText
    vehicle: ShortText | None = None


class ShipmentPlanned(Payload):
    """A shipment of picked batches along legs from a warehouse, through hubs, to a recipient."""

    event_type: ClassVar[str] = "org.aidtrail.shipment.planned.v1"
    shipment_id: Ident
    recipient_id: Ident
    batch_ids: list[Ident] = Field(min_length=1, max_length=500)
    legs: list[ShipmentLeg] = Field(min_length=1, max_length=20)


REFERENCE_PAYLOADS: tuple[type[Payload], ...] = (
    DonorRegistered,
    PledgeRegistered,
    SiteRegistered,
    RecipientRegistered,
    NeedRegistered,
    NeedFulfilled,
    ShipmentPlanned,
)
