"""EPCIS 2.0 JSON-LD export of the batch log, so partners can read aidtrail's record with GS1 tools.

Mapping (CBV 2.0 short forms, which the EPCIS 2.0 JSON binding allows):

| aidtrail event        | EPCIS event                    | bizStep         | disposition                       |
|-----------------------|--------------------------------|-----------------|-----------------------------------|
| pledged               | ObjectEvent ADD                | -               | -                                 |
| received              | ObjectEvent OBSERVE            | receiving       | in_progress                       |
| inspected / resolved  | one ObjectEvent per outcome    | inspecting      | conformant/non_conformant/unavailable |
| split                 | TransformationEvent            | -               | -                                 |
| picked                | ObjectEvent OBSERVE            | picking         | in_progress                       |
| dispatched, departed  | ObjectEvent OBSERVE            | departing       | in_transit                        |
| arrived at hub        | ObjectEvent OBSERVE            | arriving        | in_transit                        |
| handed over           | ObjectEvent OBSERVE            | loading         | in_transit                        |
| delivered             | ObjectEvent OBSERVE            | accepting       | in_progress                       |
| receipt confirmed     | one ObjectEvent per outcome    | receiving       | available / damaged               |
| written off           | ObjectEvent DELETE             | destroying      | expired/damaged/disposed/unknown  |
| cancelled             | ObjectEvent DELETE             | decommissioning | inactive                          |

A batch is a class-level object (`quantityList`, epcClass `urn:aidtrail:batch:<id>`, uom UN/ECE Rec 20).
Sites become readPoint/bizLocation `urn:aidtrail:site:<id>`; donors, recipients and carriers are parties in
sourceList/destinationList. Allocation, redesignation and amendment are decisions, not observations of goods;
they are not exported. Refused events are not exported: they did not happen. Each EPCIS event carries the
aidtrail event id (`aidtrail:eventId`) so it can be traced back to the log.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import quote

import orjson

from services.audit.replay import AuditOptions, AuditResult, replay
from services.audit.tracker import Transition
from shared.domain.batch_state import BatchState
from shared.events import batch_events as ev
from shared.events.envelope import format_time
from shared.settings import Settings

EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/epcis-context.jsonld"
EXTENSION_PREFIX = "aidtrail"
EXTENSION_NAMESPACE = "urn:aidtrail:epcis:"
UOM_BY_UNIT = {"piece": "H87", "box": "BX", "kit": "KT", "set": "SET", "pallet": "PF", "unit": "EA"}
WRITE_OFF_DISPOSITION = {"expired": "expired", "damaged": "damaged", "rejected_disposal": "disposed", "lost": "unknown"}
_EVENT_NAMESPACE = uuid.UUID("6f1c2a8e-5b0d-4c57-9a43-0b8f3d6e2a11")

Event = dict[str, Any]


def urn(kind: str, ident: str) -> str:
    return f"urn:aidtrail:{kind}:{quote(ident, safe='')}"


def document_header(created: datetime | None = None) -> Event:
    return {
        "@context": [EPCIS_CONTEXT, {EXTENSION_PREFIX: EXTENSION_NAMESPACE}],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": format_time(created or datetime.now(UTC)),
    }


def epcis_events(t: Transition) -> list[Event]:
    """The EPCIS events one accepted aidtrail event maps to (none for decisions and refused events)."""
    if t.refusal is not None or t.after is None:
        return []
    return list(_Mapper(t).events())


class _Mapper:
    def __init__(self, t: Transition):
        envelope = t.record.envelope
        assert envelope is not None and t.after is not None
        self.t = t
        self.envelope = envelope
        self.after: BatchState = t.after
        self.state: BatchState = t.before or t.after
        self.parts = 0

    def events(self) -> Iterator[Event]:
        p = self.t.payload
        match p:
            case ev.BatchPledged():
                yield self._pledged(p)
            case ev.PledgeLineCancelled():
                yield self._object("DELETE", self.after.quantity_pledged, "decommissioning", "inactive")
            case ev.BatchReceived():
                yield self._received(p)
            case ev.BatchInspected():
                outcomes = {"conformant": p.accepted, "non_conformant": p.rejected, "unavailable": p.quarantined}
                yield from self._outcomes("inspecting", outcomes)
            case ev.QuarantineResolved():
                yield from self._outcomes("inspecting", {"conformant": p.released, "non_conformant": p.rejected})
            case ev.BatchSplit():
                yield self._split(p)
            case ev.BatchPicked():
                yield self._picked(p)
            case ev.BatchWrittenOff():
                yield self._written_off(p)
            case ev.BatchDispatched():
                yield self._moving("departing", p.quantity, p.from_site_id, p.to_site_id, p.carrier)
            case ev.BatchArrivedAtHub():
                yield self._at(self._object("OBSERVE", self.after.in_transit, "arriving", "in_transit"), p.hub_site_id)
            case ev.BatchHandedOver():
                yield self._handed_over(p)
            case ev.BatchDepartedHub():
                yield self._moving("departing", self.after.in_transit, p.hub_site_id, p.to_site_id, p.carrier)
            case ev.BatchDelivered():
                yield self._delivered(p)
            case ev.ReceiptConfirmed():
                received = {"available": p.quantity_received, "damaged": p.quantity_damaged}
                yield from self._outcomes("receiving", received)

    # --- builders --------------------------------------------------------------------------------------------

    def _base(self, kind: str) -> Event:
        self.parts += 1
        ce_id = self.envelope.id
        event_id = ce_id if self.parts == 1 else str(uuid.uuid5(_EVENT_NAMESPACE, f"{ce_id}/{self.parts}"))
        return {
            "type": kind,
            "eventID": f"urn:uuid:{event_id}",
            "eventTime": format_time(self.envelope.time),
            "eventTimeZoneOffset": "+00:00",
            "recordTime": format_time(self.t.record.timestamp),
        }

    def _tail(self, event: Event) -> Event:
        event[f"{EXTENSION_PREFIX}:eventId"] = self.envelope.id
        event[f"{EXTENSION_PREFIX}:eventType"] = self.envelope.type
        event[f"{EXTENSION_PREFIX}:batchId"] = self.envelope.subject
        event[f"{EXTENSION_PREFIX}:actor"] = self.envelope.actor
        return event

    def _quantity(self, batch_id: str, quantity: int) -> dict[str, Any]:
        element: dict[str, Any] = {"epcClass": urn("batch", batch_id), "quantity": quantity}
        uom = UOM_BY_UNIT.get(self.state.unit)
        if uom:
            element["uom"] = uom
        return element

    def _object(self, action: str, quantity: int, biz_step: str | None, disposition: str | None) -> Event:
        event = self._base("ObjectEvent")
        event["action"] = action
        event["quantityList"] = [self._quantity(self.envelope.subject, quantity)]
        if biz_step:
            event["bizStep"] = biz_step
        if disposition:
            event["disposition"] = disposition
        return self._tail(event)

    def _at(self, event: Event, site_id: str | None) -> Event:
        if site_id:
            event["readPoint"] = {"id": urn("site", site_id)}
            event["bizLocation"] = {"id": urn("site", site_id)}
        return event

    def _pledged(self, p: ev.BatchPledged) -> Event:
        event = self._object("ADD", p.quantity, None, None)
        event["sourceList"] = [{"type": "owning_party", "source": urn("donor", p.donor_id)}]
        if p.designated_recipient_id:
            event["destinationList"] = [
                {"type": "owning_party", "destination": urn("recipient", p.designated_recipient_id)}
            ]
        event[f"{EXTENSION_PREFIX}:item"] = p.item
        return event

    def _received(self, p: ev.BatchReceived) -> Event:
        event = self._at(self._object("OBSERVE", p.quantity_received, "receiving", "in_progress"), p.site_id)
        event["sourceList"] = [{"type": "owning_party", "source": urn("donor", self.state.donor_id)}]
        event["destinationList"] = [{"type": "location", "destination": urn("site", p.site_id)}]
        return event

    def _outcomes(self, biz_step: str, quantities: dict[str, int]) -> Iterator[Event]:
        """One event per disposition: EPCIS gives each event one disposition, an inspection has several."""
        for disposition, quantity in quantities.items():
            if quantity:
                yield self._at(self._object("OBSERVE", quantity, biz_step, disposition), self.after.location_site_id)

    def _split(self, p: ev.BatchSplit) -> Event:
        event = self._base("TransformationEvent")
        event["inputQuantityList"] = [self._quantity(self.envelope.subject, p.quantity)]
        event["outputQuantityList"] = [self._quantity(p.child_batch_id, p.quantity)]
        event["transformationID"] = urn("split", f"{self.envelope.subject}/{p.child_batch_id}")
        return self._tail(self._at(event, self.state.location_site_id))

    def _picked(self, p: ev.BatchPicked) -> Event:
        event = self._at(self._object("OBSERVE", p.quantity, "picking", "in_progress"), self.state.location_site_id)
        recipient = self.after.allocated_recipient_id
        if recipient:
            event["destinationList"] = [{"type": "owning_party", "destination": urn("recipient", recipient)}]
        return event

    def _written_off(self, p: ev.BatchWrittenOff) -> Event:
        biz_step = None if p.reason is ev.WriteOffReason.LOST else "destroying"
        event = self._object("DELETE", p.quantity, biz_step, WRITE_OFF_DISPOSITION[p.reason.value])
        return self._at(event, self.state.location_site_id) if p.stage is ev.WriteOffStage.STOCK else event

    def _moving(self, biz_step: str, quantity: int, from_site: str, to_site: str, carrier: str) -> Event:
        event = self._object("OBSERVE", quantity, biz_step, "in_transit")
        event["readPoint"] = {"id": urn("site", from_site)}
        event["sourceList"] = [{"type": "location", "source": urn("site", from_site)}]
        event["destinationList"] = [
            {"type": "location", "destination": urn("site", to_site)},
            {"type": "possessing_party", "destination": urn("carrier", carrier)},
        ]
        return event

    def _handed_over(self, p: ev.BatchHandedOver) -> Event:
        event = self._at(self._object("OBSERVE", self.after.in_transit, "loading", "in_transit"), p.hub_site_id)
        event["sourceList"] = [{"type": "possessing_party", "source": urn("carrier", p.from_carrier)}]
        event["destinationList"] = [{"type": "possessing_party", "destination": urn("carrier", p.to_carrier)}]
        return event

    def _delivered(self, p: ev.BatchDelivered) -> Event:
        event = self._at(self._object("OBSERVE", p.quantity, "accepting", "in_progress"), p.site_id)
        event["destinationList"] = [
            {"type": "possessing_party", "destination": urn("recipient", p.recipient_id)},
            {"type": "location", "destination": urn("site", p.site_id)},
        ]
        return event


class EpcisWriter:
    """Writes the document as it goes, so exporting millions of events needs no more memory than a few."""

    def __init__(self, out: IO[bytes], created: datetime | None = None):
        self.out = out
        self.count = 0
        header = orjson.dumps(document_header(created))
        self.out.write(header[:-1] + b',"epcisBody":{"eventList":[')

    def write(self, transition: Transition) -> None:
        for event in epcis_events(transition):
            self.out.write(b"," if self.count else b"")
            self.out.write(orjson.dumps(event))
            self.count += 1

    def close(self) -> None:
        self.out.write(b"]}}")


async def export_epcis(
    settings: Settings, out: IO[bytes], options: AuditOptions | None = None
) -> tuple[AuditResult, int]:
    """Replay the log (checks included) while streaming its EPCIS document to `out`; returns the event count."""
    writer = EpcisWriter(out)
    result = await replay(settings, options=options, hook=writer.write)
    writer.close()
    return result, writer.count
