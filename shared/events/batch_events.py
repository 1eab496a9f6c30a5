"""Payloads of the events on a batch's stream, one pydantic model per event type and version.

Every model forbids unknown fields: an event the fold cannot fully understand must be refused, not half-read.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

MAX_QUANTITY = 1_000_000_000

Quantity = Annotated[int, Field(gt=0, le=MAX_QUANTITY, description="A whole number of units, at least 1.")]
Count = Annotated[int, Field(ge=0, le=MAX_QUANTITY, description="A whole number of units, 0 allowed.")]
Ident = Annotated[str, StringConstraints(min_length=1, max_length=120, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class Payload(BaseModel):
    """Base of every payload; `event_type` is the versioned CloudEvents type it is published as."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    event_type: ClassVar[str]


class Unit(StrEnum):
    PIECE = "piece"
    BOX = "box"
    KIT = "kit"
    SET = "set"
    PALLET = "pallet"
    UNIT = "unit"


class Condition(StrEnum):
    GOOD = "good"
    DAMAGED_PACKAGING = "damaged_packaging"
    DAMAGED = "damaged"
    UNKNOWN = "unknown"


class WriteOffReason(StrEnum):
    EXPIRED = "expired"
    DAMAGED = "damaged"
    LOST = "lost"
    REJECTED_DISPOSAL = "rejected_disposal"


class WriteOffStage(StrEnum):
    STOCK = "stock"
    TRANSIT = "transit"


class BatchPledged(Payload):
    """A donor pledged one line of goods: it becomes a tracked batch, expected at a warehouse."""

    event_type: ClassVar[str] = "org.aidtrail.batch.pledged.v1"
    pledge_id: Ident
    donor_id: Ident
    line_no: int = Field(ge=1, le=10_000)
    item: Ident
    category: ShortText = "medical"
    quantity: Quantity
    unit: Unit
    standard: ShortText | None = None
    warehouse_id: Ident
    designated_recipient_id: Ident | None = None
    purpose: Text | None = None


class PledgeLineAmended(Payload):
    """The donor changed a line before its goods were received."""

    event_type: ClassVar[str] = "org.aidtrail.batch.amended.v1"
    quantity: Quantity | None = None
    warehouse_id: Ident | None = None
    designated_recipient_id: Ident | None = None
    reason: Text


class PledgeLineCancelled(Payload):
    """The donor cancelled a line before its goods were received."""

    event_type: ClassVar[str] = "org.aidtrail.batch.cancelled.v1"
    reason: Text


class BatchReceivedV1(Payload):
    """The first shape of a receipt, kept readable through `upcast_received_v1`: the site was a free-text
    name and there was no lot, expiry or condition."""

    event_type: ClassVar[str] = "org.aidtrail.batch.received.v1"
    site: ShortText
    quantity: Count
    shortfall: Count = 0


class BatchReceived(Payload):
    """The warehouse received the goods; any shortfall against the pledge is explicit, with a reason."""

    event_type: ClassVar[str] = "org.aidtrail.batch.received.v2"
    site_id: Ident
    quantity_received: Count
    shortfall: Count = 0
    shortfall_reason: Text | None = None
    lot: ShortText | None = None
    expiry: date | None = None
    condition: Condition = Condition.UNKNOWN


class BatchInspected(Payload):
    """Quality control against the declared standard: accepted, rejected and quarantined add up to what was received."""

    event_type: ClassVar[str] = "org.aidtrail.batch.inspected.v1"
    inspector: ShortText
    standard_checked: ShortText
    accepted: Count
    rejected: Count
    quarantined: Count
    evidence_refs: list[ShortText] = Field(default_factory=list, max_length=50)
    notes: Text | None = None


class QuarantineResolved(Payload):
    """Quarantined goods were re-inspected: released into stock or rejected."""

    event_type: ClassVar[str] = "org.aidtrail.batch.quarantine-resolved.v1"
    inspector: ShortText
    released: Count
    rejected: Count
    evidence_refs: list[ShortText] = Field(default_factory=list, max_length=50)
    notes: Text | None = None


class BatchRedesignated(Payload):
    """A designated batch may go to another recipient: who approved it and why."""

    event_type: ClassVar[str] = "org.aidtrail.batch.redesignated.v1"
    from_recipient_id: Ident | None
    to_recipient_id: Ident
    approved_by: ShortText
    reason: Text


class BatchAllocated(Payload):
    """Stock was promised to a recipient's need."""

    event_type: ClassVar[str] = "org.aidtrail.batch.allocated.v1"
    allocation_id: Ident
    need_id: Ident
    recipient_id: Ident
    quantity: Quantity
    priority_rank: int | None = None


class BatchSplit(Payload):
    """On the parent: part of its stock left to become `child_batch_id`, taking one allocation with it."""

    event_type: ClassVar[str] = "org.aidtrail.batch.split.v1"
    child_batch_id: Ident
    allocation_id: Ident
    quantity: Quantity


class BatchCreatedBySplit(Payload):
    """First event of a child batch: it names its parent, so lineage is never lost."""

    event_type: ClassVar[str] = "org.aidtrail.batch.split-created.v1"
    parent_batch_id: Ident
    root_batch_id: Ident
    pledge_id: Ident
    donor_id: Ident
    item: Ident
    category: ShortText
    unit: Unit
    standard: ShortText | None = None
    quantity: Quantity
    site_id: Ident
    lot: ShortText | None = None
    expiry: date | None = None
    designated_recipient_id: Ident | None = None
    allocation_id: Ident
    need_id: Ident
    recipient_id: Ident


class BatchPicked(Payload):
    """The whole batch was picked for an allocation and is ready to ship."""

    event_type: ClassVar[str] = "org.aidtrail.batch.picked.v1"
    allocation_id: Ident
    quantity: Quantity
    picker: ShortText


class BatchWrittenOff(Payload):
    """Expired, damaged or lost goods left the record, in stock or in transit, with a reason."""

    event_type: ClassVar[str] = "org.aidtrail.batch.written-off.v1"
    quantity: Quantity
    reason: WriteOffReason
    stage: WriteOffStage
    note: Text
    shipment_id: Ident | None = None


class BatchDispatched(Payload):
    """The batch is in transit: it left `from_site_id` on the first leg of a shipment."""

    event_type: ClassVar[str] = "org.aidtrail.batch.dispatched.v1"
    shipment_id: Ident
    leg_no: int = Field(ge=1, le=100)
    from_site_id: Ident
    to_site_id: Ident
    carrier: ShortText
    vehicle: ShortText | None = None
    quantity: Quantity


class BatchArrivedAtHub(Payload):
    """The batch arrived at a relay hub."""

    event_type: ClassVar[str] = "org.aidtrail.batch.arrived.v1"
    shipment_id: Ident
    leg_no: int = Field(ge=1, le=100)
    hub_site_id: Ident


class BatchHandedOver(Payload):
    """At a hub, one carrier handed the batch to another."""

    event_type: ClassVar[str] = "org.aidtrail.batch.handed-over.v1"
    shipment_id: Ident
    hub_site_id: Ident
    from_carrier: ShortText
    to_carrier: ShortText
    vehicle: ShortText | None = None


class BatchDepartedHub(Payload):
    """The batch left a relay hub on its next leg."""

    event_type: ClassVar[str] = "org.aidtrail.batch.departed.v1"
    shipment_id: Ident
    leg_no: int = Field(ge=1, le=100)
    hub_site_id: Ident
    to_site_id: Ident
    carrier: ShortText
    vehicle: ShortText | None = None


class BatchDelivered(Payload):
    """The batch was delivered to the recipient's site."""

    event_type: ClassVar[str] = "org.aidtrail.batch.delivered.v1"
    shipment_id: Ident
    site_id: Ident
    recipient_id: Ident
    quantity: Quantity


class ReceiptConfirmed(Payload):
    """The recipient signed for the batch: received and damaged quantities, and a reason for any discrepancy."""

    event_type: ClassVar[str] = "org.aidtrail.batch.receipt-confirmed.v1"
    recipient_id: Ident
    quantity_received: Count
    quantity_damaged: Count = 0
    signed_by: ShortText
    discrepancy_reason: Text | None = None


BATCH_PAYLOADS: tuple[type[Payload], ...] = (
    BatchPledged,
    PledgeLineAmended,
    PledgeLineCancelled,
    BatchReceivedV1,
    BatchReceived,
    BatchInspected,
    QuarantineResolved,
    BatchRedesignated,
    BatchAllocated,
    BatchSplit,
    BatchCreatedBySplit,
    BatchPicked,
    BatchWrittenOff,
    BatchDispatched,
    BatchArrivedAtHub,
    BatchHandedOver,
    BatchDepartedHub,
    BatchDelivered,
    ReceiptConfirmed,
)
