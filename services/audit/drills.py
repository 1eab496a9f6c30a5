"""One crafted log per reconciliation check, each breaking exactly that check: they document how each rule
can be broken and they are what the tests replay. A drill names the events its finding must point at.

Where the shared fold refuses the offending event, the drill also fails "fold-accepts-all" (the refusal is the
evidence); rules across batches (a child holds what its parent split off, designation, lineage) are breaks the
fold cannot see, and only the auditor finds them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.audit.craft import CraftedLog
from services.audit.scenario import DONOR, HOSPITAL, HOSPITAL_SITE, WAREHOUSE, register_parties
from shared.events import batch_events as ev
from shared.events.envelope import Envelope

OTHER_HOSPITAL = "rcp-huoshenshan"
FOLD = frozenset({"fold-accepts-all"})


@dataclass(frozen=True)
class Drill:
    check: str
    event_ids: tuple[str, ...]
    now: datetime
    also: frozenset[str] = field(default_factory=frozenset)

    @property
    def failing(self) -> set[str]:
        return {self.check, *self.also}


def pledge(log: CraftedLog, batch: str, quantity: int = 1000, designated: str | None = HOSPITAL) -> Envelope:
    payload = ev.BatchPledged(
        pledge_id=f"pl-{batch}",
        donor_id=DONOR,
        line_no=1,
        item="n95-mask",
        quantity=quantity,
        unit=ev.Unit.PIECE,
        warehouse_id=WAREHOUSE,
        designated_recipient_id=designated,
    )
    return log.emit("pledge", batch, payload)


def receive(log: CraftedLog, batch: str, received: int, shortfall: int = 0) -> Envelope:
    reason = "short delivery" if shortfall else None
    payload = ev.BatchReceived(
        site_id=WAREHOUSE, quantity_received=received, shortfall=shortfall, shortfall_reason=reason
    )
    return log.emit("warehouse", batch, payload)


def inspect(log: CraftedLog, batch: str, accepted: int, rejected: int = 0, quarantined: int = 0) -> Envelope:
    payload = ev.BatchInspected(
        inspector="qc-li", standard_checked="N95", accepted=accepted, rejected=rejected, quarantined=quarantined
    )
    return log.emit("warehouse", batch, payload)


def in_stock(log: CraftedLog, batch: str, quantity: int = 1000, designated: str | None = HOSPITAL) -> None:
    pledge(log, batch, quantity, designated)
    receive(log, batch, quantity)
    inspect(log, batch, quantity)


def allocate(log: CraftedLog, batch: str, allocation: str, quantity: int, recipient: str = HOSPITAL) -> Envelope:
    payload = ev.BatchAllocated(
        allocation_id=allocation, need_id=f"need-{allocation}", recipient_id=recipient, quantity=quantity
    )
    return log.emit("warehouse", batch, payload)


def picked_and_dispatched(log: CraftedLog, batch: str, allocation: str, quantity: int, shipment: str) -> Envelope:
    log.emit("warehouse", batch, ev.BatchPicked(allocation_id=allocation, quantity=quantity, picker="p-wu"))
    payload = ev.BatchDispatched(
        shipment_id=shipment,
        leg_no=1,
        from_site_id=WAREHOUSE,
        to_site_id=HOSPITAL_SITE,
        carrier="SF Express",
        quantity=quantity,
    )
    return log.emit("dispatch", batch, payload)


def deliver(log: CraftedLog, batch: str, shipment: str, quantity: int, recipient: str = HOSPITAL) -> Envelope:
    payload = ev.BatchDelivered(shipment_id=shipment, site_id=HOSPITAL_SITE, recipient_id=recipient, quantity=quantity)
    return log.emit("dispatch", batch, payload)


def confirm(log: CraftedLog, batch: str, received: int, recipient: str = HOSPITAL) -> Envelope:
    payload = ev.ReceiptConfirmed(recipient_id=recipient, quantity_received=received, signed_by="nurse Wang")
    return log.emit("recipient", batch, payload)


def split(
    log: CraftedLog,
    parent: str,
    child: str,
    quantity: int,
    birth_quantity: int | None = None,
    recipient: str = HOSPITAL,
    designated: str | None = HOSPITAL,
) -> tuple[Envelope, Envelope]:
    allocate(log, parent, f"al-{child}", quantity, designated or recipient)
    cut = log.emit(
        "warehouse", parent, ev.BatchSplit(child_batch_id=child, allocation_id=f"al-{child}", quantity=quantity)
    )
    born = log.emit(
        "warehouse",
        child,
        ev.BatchCreatedBySplit(
            parent_batch_id=parent,
            root_batch_id=parent,
            pledge_id=f"pl-{parent}",
            donor_id=DONOR,
            item="n95-mask",
            category="medical",
            unit=ev.Unit.PIECE,
            quantity=birth_quantity or quantity,
            site_id=WAREHOUSE,
            designated_recipient_id=designated,
            allocation_id=f"al-{child}",
            need_id=f"need-al-{child}",
            recipient_id=recipient,
        ),
    )
    return cut, born


# --- one drill per check -------------------------------------------------------------------------------------


def pledged_received_shortfall(log: CraftedLog) -> Drill:
    pledge(log, "b-1", 1000)
    bad = receive(log, "b-1", 900, shortfall=50)  # 50 units unaccounted for
    return Drill("pledged-received-shortfall", (bad.id,), log.clock, FOLD)


def received_inspected(log: CraftedLog) -> Drill:
    pledge(log, "b-1", 1000)
    receive(log, "b-1", 1000)
    bad = inspect(log, "b-1", 900, rejected=50, quarantined=40)  # 10 units vanish at inspection
    return Drill("received-inspected", (bad.id,), log.clock, FOLD)


def stock_conserved(log: CraftedLog) -> Drill:
    in_stock(log, "b-1")
    cut, born = split(log, "b-1", "b-1-c1", 600, birth_quantity=500)  # the child holds 100 fewer than split off
    return Drill("stock-conserved", (cut.id, born.id), log.clock)


def transit_conserved(log: CraftedLog) -> Drill:
    in_stock(log, "b-1", 600)
    allocate(log, "b-1", "al-1", 600)
    picked_and_dispatched(log, "b-1", "al-1", 600, "sh-1")
    bad = deliver(log, "b-1", "sh-1", 590)  # 10 units vanish in transit
    return Drill("transit-conserved", (bad.id,), log.clock, FOLD)


def receipt_conserved(log: CraftedLog) -> Drill:
    in_stock(log, "b-1", 600)
    allocate(log, "b-1", "al-1", 600)
    picked_and_dispatched(log, "b-1", "al-1", 600, "sh-1")
    deliver(log, "b-1", "sh-1", 600)
    bad = confirm(log, "b-1", 610)  # signs for more than was delivered
    return Drill("receipt-conserved", (bad.id,), log.clock, FOLD)


def lineage_intact(log: CraftedLog) -> Drill:
    orphan = log.emit(
        "warehouse",
        "b-orphan",
        ev.BatchCreatedBySplit(
            parent_batch_id="b-ghost",
            root_batch_id="b-ghost",
            pledge_id="pl-ghost",
            donor_id=DONOR,
            item="n95-mask",
            category="medical",
            unit=ev.Unit.PIECE,
            quantity=300,
            site_id=WAREHOUSE,
            allocation_id="al-x",
            need_id="need-x",
            recipient_id=HOSPITAL,
        ),
    )
    return Drill("lineage-intact", (orphan.id,), log.clock)


def designation_honoured(log: CraftedLog) -> Drill:
    in_stock(log, "b-1", designated=HOSPITAL)
    split(log, "b-1", "b-1-c1", 600, recipient=OTHER_HOSPITAL, designated=HOSPITAL)  # allocated past the lock
    picked_and_dispatched(log, "b-1-c1", "al-b-1-c1", 600, "sh-1")
    bad = deliver(log, "b-1-c1", "sh-1", 600, recipient=OTHER_HOSPITAL)
    confirm(log, "b-1-c1", 600, recipient=OTHER_HOSPITAL)
    return Drill("designation-honoured", (bad.id,), log.clock)


def fold_accepts_all(log: CraftedLog) -> Drill:
    in_stock(log, "b-1", 600)
    allocate(log, "b-1", "al-1", 600)
    log.emit("warehouse", "b-1", ev.BatchPicked(allocation_id="al-1", quantity=600, picker="p-wu"))
    bad = deliver(log, "b-1", "sh-1", 600)  # delivered without ever being dispatched
    return Drill("fold-accepts-all", (bad.id,), log.clock)


def events_readable(log: CraftedLog) -> Drill:
    pledge(log, "b-1", 1000)
    bad = log.emit_data("warehouse", "b-1", "org.aidtrail.batch.teleported.v1", {"site_id": WAREHOUSE})
    return Drill("events-readable", (bad.id,), log.clock)


def no_stuck_batches(log: CraftedLog) -> Drill:
    pledge(log, "b-1", 1000)
    received = receive(log, "b-1", 1000)  # never inspected
    return Drill("no-stuck-batches", (received.id,), received.time + timedelta(hours=49))


DRILLS: dict[str, Callable[[CraftedLog], Drill]] = {
    "events-readable": events_readable,
    "fold-accepts-all": fold_accepts_all,
    "pledged-received-shortfall": pledged_received_shortfall,
    "received-inspected": received_inspected,
    "stock-conserved": stock_conserved,
    "transit-conserved": transit_conserved,
    "receipt-conserved": receipt_conserved,
    "lineage-intact": lineage_intact,
    "designation-honoured": designation_honoured,
    "no-stuck-batches": no_stuck_batches,
}


def run_drill(check: str, log: CraftedLog, with_parties: bool = True) -> Drill:
    if with_parties:
        register_parties(log)
    return DRILLS[check](log)
