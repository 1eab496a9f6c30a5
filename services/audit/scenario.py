"""A complete, clean lifecycle written the way the four services write it, for tests, demos and tamper drills.

A donor pledges 1000 N95 masks designated to a Wuhan hospital; the Wuhan warehouse receives 950 (50 short),
inspects them (900 accepted, 30 rejected, 20 quarantined, later released), splits 600 off for the hospital's
need, ships them through the Xiantao relay hub (with a carrier handover) to the hospital, which confirms
receipt; the remaining 320 go straight to the hospital the same way without the hub.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from services.audit.craft import CraftedLog
from shared.events import batch_events as ev
from shared.events import reference_events as ref
from shared.events.envelope import Envelope

DONOR = "donor-jingdong"
WAREHOUSE = "wh-wuhan-1"
HUB = "hub-xiantao"
HOSPITAL = "rcp-jinyintan"
HOSPITAL_SITE = "site-jinyintan"


@dataclass
class Lifecycle:
    """The ids a test needs to find, tamper with or assert on the events of the scenario."""

    root: str
    child: str
    events: dict[str, Envelope] = field(default_factory=dict)
    moments: dict[str, datetime] = field(default_factory=dict)

    def id(self, name: str) -> str:
        return self.events[name].id


def register_parties(log: CraftedLog) -> None:
    log.emit("pledge", DONOR, ref.DonorRegistered(donor_id=DONOR, name="Jingdong Logistics", country="CN"))
    for site_id, name, kind, recipient in (
        (WAREHOUSE, "Wuhan warehouse 1", ref.SiteKind.WAREHOUSE, None),
        (HUB, "Xiantao relay hub", ref.SiteKind.RELAY_HUB, None),
        (HOSPITAL_SITE, "Jinyintan hospital stores", ref.SiteKind.RECIPIENT_FACILITY, HOSPITAL),
    ):
        log.emit("dispatch", site_id, ref.SiteRegistered(site_id=site_id, name=name, kind=kind, recipient_id=recipient))
    log.emit(
        "recipient",
        HOSPITAL,
        ref.RecipientRegistered(
            recipient_id=HOSPITAL,
            name="Jinyintan Hospital",
            kind=ref.RecipientKind.HOSPITAL,
            frontline=True,
            site_id=HOSPITAL_SITE,
        ),
    )


def clean_lifecycle(log: CraftedLog, root: str = "b-n95-001", with_parties: bool = True) -> Lifecycle:
    """Write the whole story for one pledged batch; every quantity adds up and every chain is intact."""
    if with_parties:
        register_parties(log)
    life = Lifecycle(root=root, child=f"{root}-c1")
    _intake(log, life)
    _split_and_ship_child(log, life)
    _ship_remainder(log, life)
    return life


def _record(log: CraftedLog, life: Lifecycle, name: str, source: str, subject: str, payload: ev.Payload) -> None:
    envelope = log.emit(source, subject, payload)
    life.events[name] = envelope
    life.moments[name] = envelope.time


def _intake(log: CraftedLog, life: Lifecycle) -> None:
    r = life.root
    _record(
        log,
        life,
        "pledged",
        "pledge",
        r,
        ev.BatchPledged(
            pledge_id="pl-001",
            donor_id=DONOR,
            line_no=1,
            item="n95-mask",
            quantity=1000,
            unit=ev.Unit.PIECE,
            standard="N95",
            warehouse_id=WAREHOUSE,
            designated_recipient_id=HOSPITAL,
            purpose="frontline staff",
        ),
    )
    _record(
        log,
        life,
        "received",
        "warehouse",
        r,
        ev.BatchReceived(
            site_id=WAREHOUSE,
            quantity_received=950,
            shortfall=50,
            shortfall_reason="one carton lost by the donor's courier",
            lot="L2020-01",
            condition=ev.Condition.GOOD,
        ),
    )
    _record(
        log,
        life,
        "inspected",
        "warehouse",
        r,
        ev.BatchInspected(inspector="qc-li", standard_checked="N95", accepted=900, rejected=30, quarantined=20),
    )
    _record(log, life, "released", "warehouse", r, ev.QuarantineResolved(inspector="qc-li", released=20, rejected=0))
    _record(
        log,
        life,
        "allocated",
        "warehouse",
        r,
        ev.BatchAllocated(allocation_id="al-1", need_id="need-1", recipient_id=HOSPITAL, quantity=600),
    )


def _split_and_ship_child(log: CraftedLog, life: Lifecycle) -> None:
    r, c = life.root, life.child
    _record(log, life, "split", "warehouse", r, ev.BatchSplit(child_batch_id=c, allocation_id="al-1", quantity=600))
    _record(
        log,
        life,
        "split-created",
        "warehouse",
        c,
        ev.BatchCreatedBySplit(
            parent_batch_id=r,
            root_batch_id=r,
            pledge_id="pl-001",
            donor_id=DONOR,
            item="n95-mask",
            category="medical",
            unit=ev.Unit.PIECE,
            standard="N95",
            quantity=600,
            site_id=WAREHOUSE,
            lot="L2020-01",
            designated_recipient_id=HOSPITAL,
            allocation_id="al-1",
            need_id="need-1",
            recipient_id=HOSPITAL,
        ),
    )
    _record(log, life, "picked", "warehouse", c, ev.BatchPicked(allocation_id="al-1", quantity=600, picker="picker-wu"))
    _record(
        log,
        life,
        "dispatched",
        "dispatch",
        c,
        ev.BatchDispatched(
            shipment_id="sh-1", leg_no=1, from_site_id=WAREHOUSE, to_site_id=HUB, carrier="SF Express", quantity=600
        ),
    )
    _record(log, life, "arrived", "dispatch", c, ev.BatchArrivedAtHub(shipment_id="sh-1", leg_no=1, hub_site_id=HUB))
    _record(
        log,
        life,
        "handed-over",
        "dispatch",
        c,
        ev.BatchHandedOver(
            shipment_id="sh-1", hub_site_id=HUB, from_carrier="SF Express", to_carrier="Hubei Red Cross van"
        ),
    )
    _record(
        log,
        life,
        "departed",
        "dispatch",
        c,
        ev.BatchDepartedHub(
            shipment_id="sh-1", leg_no=2, hub_site_id=HUB, to_site_id=HOSPITAL_SITE, carrier="Hubei Red Cross van"
        ),
    )
    _record(
        log,
        life,
        "delivered",
        "dispatch",
        c,
        ev.BatchDelivered(shipment_id="sh-1", site_id=HOSPITAL_SITE, recipient_id=HOSPITAL, quantity=600),
    )
    _record(
        log,
        life,
        "confirmed",
        "recipient",
        c,
        ev.ReceiptConfirmed(recipient_id=HOSPITAL, quantity_received=600, signed_by="head nurse Wang"),
    )


def _ship_remainder(log: CraftedLog, life: Lifecycle) -> None:
    r = life.root
    _record(
        log,
        life,
        "allocated-rest",
        "warehouse",
        r,
        ev.BatchAllocated(allocation_id="al-2", need_id="need-2", recipient_id=HOSPITAL, quantity=320),
    )
    _record(log, life, "picked-rest", "warehouse", r, ev.BatchPicked(allocation_id="al-2", quantity=320, picker="p-wu"))
    _record(
        log,
        life,
        "dispatched-rest",
        "dispatch",
        r,
        ev.BatchDispatched(
            shipment_id="sh-2",
            leg_no=1,
            from_site_id=WAREHOUSE,
            to_site_id=HOSPITAL_SITE,
            carrier="SF Express",
            quantity=320,
        ),
    )
    _record(
        log,
        life,
        "delivered-rest",
        "dispatch",
        r,
        ev.BatchDelivered(shipment_id="sh-2", site_id=HOSPITAL_SITE, recipient_id=HOSPITAL, quantity=320),
    )
    _record(
        log,
        life,
        "confirmed-rest",
        "recipient",
        r,
        ev.ReceiptConfirmed(
            recipient_id=HOSPITAL,
            quantity_received=318,
            quantity_damaged=2,
            signed_by="head nurse Wang",
            discrepancy_reason="two boxes crushed",
        ),
    )
