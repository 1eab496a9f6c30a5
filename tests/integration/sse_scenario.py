"""A scenario for the SSE stream whose audiences are known by hand: each event carries the tags of the clients that
must receive it, so the stream's filters are checked against an independent answer, not against themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.events import batch_events as ev
from shared.events import reference_events as ref
from shared.events.envelope import Envelope
from shared.events.registry import payload_data

# --- a scenario whose audiences are known by hand ------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    """One event and who must see it: shipment, site and recipient ids it belongs to (written by hand)."""

    envelope: Envelope
    batch: bool
    tags: frozenset[str]


def event(payload: ev.Payload, subject: str, *tags: str) -> Published:
    envelope = Envelope(
        type=payload.event_type,
        source="scenario",
        subject=subject,
        data=payload_data(payload),
        actor="operator:test",
        correlation_id="scenario",
    )
    return Published(envelope, payload.event_type.startswith("org.aidtrail.batch."), frozenset(tags))


def pledged(line: int, warehouse: str, designated: str | None) -> ev.BatchPledged:
    return ev.BatchPledged(
        pledge_id="p-1",
        donor_id="d-1",
        line_no=line,
        item="n95-mask",
        quantity=100,
        unit=ev.Unit.PIECE,
        warehouse_id=warehouse,
        designated_recipient_id=designated,
        purpose="frontline protection",
    )


def intake(site: str) -> list[ev.Payload]:
    return [
        ev.BatchReceived(site_id=site, quantity_received=100, condition=ev.Condition.GOOD),
        ev.BatchInspected(inspector="qc", standard_checked="N95", accepted=100, rejected=0, quarantined=0),
    ]


def batch_one() -> list[Published]:
    """Designated to r-1, travels on ship-1 through hub-1."""
    received, inspected = intake("wh-1")
    return [
        event(pledged(1, "wh-1", "r-1"), "b-1", "r-1", "wh-1"),
        event(received, "b-1", "r-1", "wh-1"),
        event(inspected, "b-1", "r-1", "wh-1"),
        event(ev.BatchAllocated(allocation_id="a-1", need_id="n-1", recipient_id="r-1", quantity=100), "b-1",
              "r-1", "wh-1"),
        event(ev.BatchPicked(allocation_id="a-1", quantity=100, picker="op"), "b-1", "r-1", "wh-1"),
        event(ev.BatchDispatched(shipment_id="ship-1", leg_no=1, from_site_id="wh-1", to_site_id="hub-1",
                                 carrier="SF", quantity=100), "b-1", "r-1", "wh-1", "hub-1", "ship-1"),
        event(ev.BatchArrivedAtHub(shipment_id="ship-1", leg_no=1, hub_site_id="hub-1"), "b-1",
              "r-1", "hub-1", "ship-1"),
        event(ev.BatchDepartedHub(shipment_id="ship-1", leg_no=2, hub_site_id="hub-1", to_site_id="site-r1",
                                  carrier="JD"), "b-1", "r-1", "hub-1", "ship-1", "site-r1"),
        event(ev.BatchDelivered(shipment_id="ship-1", site_id="site-r1", recipient_id="r-1", quantity=100), "b-1",
              "r-1", "ship-1", "site-r1"),
        event(ev.ReceiptConfirmed(recipient_id="r-1", quantity_received=100, signed_by="dr.wang"), "b-1",
              "r-1", "ship-1", "site-r1"),
    ]  # fmt: skip


def batch_two() -> list[Published]:
    """Undesignated until allocated to r-2; goes straight from wh-1 to r-2's site on ship-2."""
    received, inspected = intake("wh-1")
    return [
        event(pledged(2, "wh-1", None), "b-2", "wh-1"),
        event(received, "b-2", "wh-1"),
        event(inspected, "b-2", "wh-1"),
        event(ev.BatchAllocated(allocation_id="a-2", need_id="n-2", recipient_id="r-2", quantity=100), "b-2",
              "r-2", "wh-1"),
        event(ev.BatchPicked(allocation_id="a-2", quantity=100, picker="op"), "b-2", "r-2", "wh-1"),
        event(ev.BatchDispatched(shipment_id="ship-2", leg_no=1, from_site_id="wh-1", to_site_id="site-r2",
                                 carrier="SF", quantity=100), "b-2", "r-2", "wh-1", "ship-2", "site-r2"),
        event(ev.BatchDelivered(shipment_id="ship-2", site_id="site-r2", recipient_id="r-2", quantity=100), "b-2",
              "r-2", "ship-2", "site-r2"),
        event(ev.ReceiptConfirmed(recipient_id="r-2", quantity_received=100, signed_by="dr.li"), "b-2",
              "r-2", "ship-2", "site-r2"),
    ]  # fmt: skip


def batch_three() -> list[Published]:
    """Designated to r-1, still in stock at wh-2."""
    received, inspected = intake("wh-2")
    return [
        event(pledged(3, "wh-2", "r-1"), "b-3", "r-1", "wh-2"),
        event(received, "b-3", "r-1", "wh-2"),
        event(inspected, "b-3", "r-1", "wh-2"),
    ]


def leg(no: int, origin: str, destination: str) -> ref.ShipmentLeg:
    return ref.ShipmentLeg(leg_no=no, from_site_id=origin, to_site_id=destination, carrier="SF")


def reference_events() -> list[Published]:
    return [
        event(ref.DonorRegistered(donor_id="d-1", name="Xiaomi"), "d-1"),
        event(ref.SiteRegistered(site_id="hub-1", name="Xiantao hub", kind=ref.SiteKind.RELAY_HUB), "hub-1",
              "hub-1"),
        event(ref.SiteRegistered(site_id="site-r1", name="Jinyintan", kind=ref.SiteKind.RECIPIENT_FACILITY,
                                 recipient_id="r-1"), "site-r1", "site-r1", "r-1"),
        event(ref.RecipientRegistered(recipient_id="r-1", name="Jinyintan", kind=ref.RecipientKind.HOSPITAL,
                                      frontline=True, site_id="site-r1"), "r-1", "r-1", "site-r1"),
        event(ref.RecipientRegistered(recipient_id="r-2", name="Tongji", kind=ref.RecipientKind.HOSPITAL,
                                      frontline=True, site_id="site-r2"), "r-2", "r-2", "site-r2"),
        event(ref.NeedRegistered(need_id="n-1", recipient_id="r-1", item="n95-mask", quantity=100,
                                 priority=ref.Priority.CRITICAL), "n-1", "r-1"),
        event(ref.ShipmentPlanned(shipment_id="ship-1", recipient_id="r-1", batch_ids=["b-1"],
                                  legs=[leg(1, "wh-1", "hub-1"), leg(2, "hub-1", "site-r1")]), "ship-1",
              "ship-1", "r-1", "wh-1", "hub-1", "site-r1"),
        event(ref.ShipmentPlanned(shipment_id="ship-2", recipient_id="r-2", batch_ids=["b-2"],
                                  legs=[leg(1, "wh-1", "site-r2")]), "ship-2", "ship-2", "r-2", "wh-1", "site-r2"),
    ]  # fmt: skip


def scenario() -> list[Published]:
    return [*reference_events(), *batch_one(), *batch_two(), *batch_three()]


def expected_ids(events: Sequence[Published], tag: str, *, batch_only: bool = False) -> set[str]:
    return {p.envelope.id for p in events if tag in p.tags and (p.batch or not batch_only)}
