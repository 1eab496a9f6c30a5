"""Valid payloads for a whole batch lifecycle, for pure tests of the fold (no I/O)."""

from __future__ import annotations

from datetime import date

from shared.events import batch_events as ev


def pledged(
    quantity: int = 1000, designated: str | None = "jinyintan-hospital", standard: str | None = "N95"
) -> ev.BatchPledged:
    return ev.BatchPledged(
        pledge_id="xiaomi-2020-01",
        donor_id="xiaomi",
        line_no=1,
        item="n95-mask",
        quantity=quantity,
        unit=ev.Unit.PIECE,
        standard=standard,
        warehouse_id="wh-wuhan-1",
        designated_recipient_id=designated,
    )


def received(quantity: int = 1000, shortfall: int = 0, reason: str | None = None) -> ev.BatchReceived:
    return ev.BatchReceived(
        site_id="wh-wuhan-1",
        quantity_received=quantity,
        shortfall=shortfall,
        shortfall_reason=reason,
        lot="L2020-01",
        expiry=date(2023, 1, 1),
        condition=ev.Condition.GOOD,
    )


def inspected(accepted: int = 1000, rejected: int = 0, quarantined: int = 0) -> ev.BatchInspected:
    return ev.BatchInspected(
        inspector="qc.zhang", standard_checked="N95", accepted=accepted, rejected=rejected, quarantined=quarantined
    )


def allocated(
    quantity: int, allocation_id: str = "alloc-1", recipient: str = "jinyintan-hospital"
) -> ev.BatchAllocated:
    return ev.BatchAllocated(allocation_id=allocation_id, need_id="need-1", recipient_id=recipient, quantity=quantity)


def picked(quantity: int, allocation_id: str = "alloc-1") -> ev.BatchPicked:
    return ev.BatchPicked(allocation_id=allocation_id, quantity=quantity, picker="op.li")


def dispatched(quantity: int) -> ev.BatchDispatched:
    return ev.BatchDispatched(
        shipment_id="ship-1",
        leg_no=1,
        from_site_id="wh-wuhan-1",
        to_site_id="hub-xiantao",
        carrier="SF",
        quantity=quantity,
    )


def arrived() -> ev.BatchArrivedAtHub:
    return ev.BatchArrivedAtHub(shipment_id="ship-1", leg_no=1, hub_site_id="hub-xiantao")


def departed() -> ev.BatchDepartedHub:
    return ev.BatchDepartedHub(
        shipment_id="ship-1", leg_no=2, hub_site_id="hub-xiantao", to_site_id="site-jinyintan", carrier="JD"
    )


def delivered(quantity: int, recipient: str = "jinyintan-hospital") -> ev.BatchDelivered:
    return ev.BatchDelivered(shipment_id="ship-1", site_id="site-jinyintan", recipient_id=recipient, quantity=quantity)


def confirmed(received_qty: int, damaged: int = 0, reason: str | None = None) -> ev.ReceiptConfirmed:
    return ev.ReceiptConfirmed(
        recipient_id="jinyintan-hospital",
        quantity_received=received_qty,
        quantity_damaged=damaged,
        signed_by="dr.wang",
        discrepancy_reason=reason,
    )


def full_lifecycle(quantity: int = 1000) -> list[ev.Payload]:
    return [
        pledged(quantity),
        received(quantity),
        inspected(quantity),
        allocated(quantity),
        picked(quantity),
        dispatched(quantity),
        arrived(),
        departed(),
        delivered(quantity),
        confirmed(quantity),
    ]
