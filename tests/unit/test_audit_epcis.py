"""The EPCIS 2.0 export is structurally valid.

No PyPI package ships the official EPCIS 2.0 JSON schema (the GS1 schema is published on ref.gs1.org and in
GS1's repository, not on PyPI), so the rules of the standard that our export relies on are written out here as
explicit checks, taken from the EPCIS 2.0 JSON schema and the CBV 2.0 vocabularies:

* document: `@context` holds the EPCIS 2.0 context, `type` is EPCISDocument, `schemaVersion` "2.0",
  `creationDate` an RFC 3339 date-time, `epcisBody.eventList` a list;
* every event: a known `type`; `eventTime` an RFC 3339 date-time and `eventTimeZoneOffset` matching the
  schema's pattern; `eventID` and `recordTime` well-formed; every other field either defined by EPCIS for that
  event type or an extension `prefix:name` whose prefix the document's `@context` declares;
* ObjectEvent: `action` one of ADD/OBSERVE/DELETE; an `epcList` or a non-empty `quantityList`; `ilmd` only
  with ADD; TransformationEvent: no `action`, and inputs and outputs (or a `transformationID`);
* quantity elements: only epcClass (a URI), quantity (a number; an integer when there is no uom) and uom
  (UN/ECE Rec 20 pattern `^[A-Z0-9]{2,3}$`);
* `bizStep` and `disposition`: a CBV 2.0 short form or a URI outside the CBV namespace;
* readPoint / bizLocation: an object with a URI `id`; source/destination lists: entries with exactly
  `type` (owning_party, possessing_party, location or a URI) and `source`/`destination` URIs.
"""

from __future__ import annotations

import io
import re
from typing import Any

import orjson
import pytest

from services.audit.craft import CraftedLog, audit_offline
from services.audit.epcis import EPCIS_CONTEXT, EpcisWriter
from services.audit.replay import AuditOptions
from services.audit.scenario import Lifecycle, clean_lifecycle
from shared.settings import Settings

EVENT_TYPES = {"ObjectEvent", "AggregationEvent", "TransformationEvent", "TransactionEvent", "AssociationEvent"}
ACTIONS = {"ADD", "OBSERVE", "DELETE"}
CBV_BIZ_STEPS = set(
    [
        "accepting",
        "arriving",
        "assembling",
        "collecting",
        "commissioning",
        "consigning",
        "creating_class_instance",
        "cycle_counting",
        "decommissioning",
        "departing",
        "destroying",
        "disassembling",
        "dispensing",
        "encoding",
        "entering_exiting",
        "holding",
        "inspecting",
        "installing",
        "killing",
        "loading",
        "other",
        "packing",
        "picking",
        "receiving",
        "removing",
        "repackaging",
        "repairing",
        "replacing",
        "reserving",
        "retail_selling",
        "sampling",
        "sensor_reporting",
        "shipping",
        "staging_outbound",
        "stock_taking",
        "stocking",
        "storing",
        "transporting",
        "unloading",
        "unpacking",
        "void_shipping",
    ]
)
CBV_DISPOSITIONS = set(
    [
        "active",
        "available",
        "completeness_inferred",
        "completeness_verified",
        "conformant",
        "container_closed",
        "container_open",
        "damaged",
        "destroyed",
        "dispensed",
        "disposed",
        "encoded",
        "expired",
        "in_progress",
        "in_transit",
        "inactive",
        "mismatch_instance",
        "mismatch_class",
        "mismatch_quantity",
        "needs_replacement",
        "no_pedigree_match",
        "non_conformant",
        "non_sellable_other",
        "partially_dispensed",
        "recalled",
        "reserved",
        "retail_sold",
        "returned",
        "sellable_accessible",
        "sellable_not_accessible",
        "stolen",
        "unavailable",
        "unknown",
    ]
)
SOURCE_DEST_TYPES = {"owning_party", "possessing_party", "location"}
COMMON_FIELDS = {
    "type",
    "eventTime",
    "eventTimeZoneOffset",
    "recordTime",
    "eventID",
    "errorDeclaration",
    "certificationInfo",
    "@context",
    "bizStep",
    "disposition",
    "persistentDisposition",
    "readPoint",
    "bizLocation",
    "bizTransactionList",
    "sourceList",
    "destinationList",
    "sensorElementList",
}
FIELDS_BY_TYPE = {
    "ObjectEvent": COMMON_FIELDS | {"action", "epcList", "quantityList", "ilmd"},
    "TransformationEvent": COMMON_FIELDS
    | {"inputEPCList", "inputQuantityList", "outputEPCList", "outputQuantityList", "transformationID", "ilmd"},
}
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
TZ_OFFSET = re.compile(r"^([+]|[-])((0[0-9]|1[0-3]):([0-5][0-9])|14:00)$")
URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$")
UOM = re.compile(r"^[A-Z0-9]{2,3}$")
CBV_NAMESPACES = ("https://ns.gs1.org/cbv/", "https://ref.gs1.org/cbv/", "urn:epcglobal:cbv:")


def validate_document(doc: dict[str, Any]) -> list[str]:
    """Every rule the export relies on; returns the problems found (empty: valid)."""
    problems: list[str] = []
    context = doc.get("@context")
    contexts = context if isinstance(context, list) else [context]
    if EPCIS_CONTEXT not in contexts:
        problems.append("@context lacks the EPCIS 2.0 context")
    prefixes = {key for item in contexts if isinstance(item, dict) for key in item}
    if doc.get("type") != "EPCISDocument" or doc.get("schemaVersion") != "2.0":
        problems.append("type must be EPCISDocument and schemaVersion 2.0")
    if not DATE_TIME.match(str(doc.get("creationDate", ""))):
        problems.append("creationDate is not an RFC 3339 date-time")
    events = doc.get("epcisBody", {}).get("eventList")
    if not isinstance(events, list):
        return [*problems, "epcisBody.eventList must be a list"]
    ids = [event.get("eventID") for event in events if "eventID" in event]
    if len(ids) != len(set(ids)):
        problems.append("eventIDs are not unique")
    for index, event in enumerate(events):
        problems.extend(f"event {index}: {p}" for p in validate_event(event, prefixes))
    return problems


def validate_event(event: dict[str, Any], prefixes: set[str]) -> list[str]:
    kind = event.get("type")
    if kind not in EVENT_TYPES:
        return [f"unknown type {kind!r}"]
    problems = _times(event) + _fields(event, kind, prefixes) + _vocabularies(event) + _places(event)
    if kind == "ObjectEvent":
        problems += _object_event(event)
    if kind == "TransformationEvent":
        problems += _transformation_event(event)
    for name in ("quantityList", "inputQuantityList", "outputQuantityList"):
        problems += [p for element in event.get(name, []) for p in _quantity(element)]
    return problems


def _times(event: dict[str, Any]) -> list[str]:
    problems = []
    if not DATE_TIME.match(str(event.get("eventTime", ""))):
        problems.append("eventTime missing or not an RFC 3339 date-time")
    if not TZ_OFFSET.match(str(event.get("eventTimeZoneOffset", ""))):
        problems.append("eventTimeZoneOffset missing or malformed")
    if "recordTime" in event and not DATE_TIME.match(str(event["recordTime"])):
        problems.append("recordTime malformed")
    if "eventID" in event and not URI.match(str(event["eventID"])):
        problems.append("eventID is not a URI")
    return problems


def _fields(event: dict[str, Any], kind: str, prefixes: set[str]) -> list[str]:
    allowed = FIELDS_BY_TYPE.get(kind, COMMON_FIELDS)
    extra = [key for key in event if key not in allowed]
    return [
        f"field {key!r} is neither EPCIS nor a declared extension"
        for key in extra
        if key.partition(":")[0] not in prefixes or ":" not in key
    ]


def _vocabulary(value: Any, allowed: set[str], what: str) -> list[str]:
    if value is None or value in allowed:
        return []
    if isinstance(value, str) and URI.match(value) and not value.startswith(CBV_NAMESPACES):
        return []
    return [f"{what} {value!r} is not in the CBV vocabulary"]


def _vocabularies(event: dict[str, Any]) -> list[str]:
    return _vocabulary(event.get("bizStep"), CBV_BIZ_STEPS, "bizStep") + _vocabulary(
        event.get("disposition"), CBV_DISPOSITIONS, "disposition"
    )


def _places(event: dict[str, Any]) -> list[str]:
    problems = []
    for name in ("readPoint", "bizLocation"):
        if name in event and not (isinstance(event[name], dict) and URI.match(str(event[name].get("id", "")))):
            problems.append(f"{name} must be an object with a URI id")
    for name, key in (("sourceList", "source"), ("destinationList", "destination")):
        for item in event.get(name, []):
            if set(item) != {"type", key} or not URI.match(str(item[key])):
                problems.append(f"{name} entry {item} must have exactly type and a URI {key}")
            elif item["type"] not in SOURCE_DEST_TYPES and not URI.match(item["type"]):
                problems.append(f"{name} type {item['type']!r} is not a CBV source/destination type")
    return problems


def _object_event(event: dict[str, Any]) -> list[str]:
    problems = []
    if event.get("action") not in ACTIONS:
        problems.append(f"action {event.get('action')!r} is not ADD, OBSERVE or DELETE")
    if "epcList" not in event and not event.get("quantityList"):
        problems.append("an ObjectEvent needs an epcList or a non-empty quantityList")
    if "ilmd" in event and event.get("action") != "ADD":
        problems.append("ilmd is only allowed with action ADD")
    return problems


def _transformation_event(event: dict[str, Any]) -> list[str]:
    problems = ["a TransformationEvent has no action"] if "action" in event else []
    has_input = event.get("inputEPCList") or event.get("inputQuantityList")
    has_output = event.get("outputEPCList") or event.get("outputQuantityList")
    if not ((has_input and has_output) or event.get("transformationID")):
        problems.append("a TransformationEvent needs inputs and outputs, or a transformationID")
    return problems


def _quantity(element: dict[str, Any]) -> list[str]:
    problems = []
    if not set(element) <= {"epcClass", "quantity", "uom"} or "epcClass" not in element or "quantity" not in element:
        problems.append(f"quantity element {element} must have epcClass and quantity (and optionally uom) only")
    if not URI.match(str(element.get("epcClass", ""))):
        problems.append("epcClass is not a URI")
    quantity = element.get("quantity")
    if not isinstance(quantity, int | float) or isinstance(quantity, bool):
        problems.append("quantity is not a number")
    if "uom" in element and not UOM.match(str(element["uom"])):
        problems.append(f"uom {element['uom']!r} does not match the Rec 20 pattern")
    if "uom" not in element and not isinstance(quantity, int):
        problems.append("without uom a quantity is a count and must be an integer")
    return problems


def export_offline() -> tuple[Lifecycle, dict[str, Any]]:
    log = CraftedLog(Settings(topic_prefix="unit"))
    life = clean_lifecycle(log)
    buffer = io.BytesIO()
    writer = EpcisWriter(buffer)
    audit_offline(log, AuditOptions(now=log.clock), hook=writer.write)
    writer.close()
    return life, orjson.loads(buffer.getvalue())


def test_lifecycle_export_is_structurally_valid() -> None:
    _, doc = export_offline()
    assert validate_document(doc) == []


def test_lifecycle_maps_to_the_cbv_steps_in_order() -> None:
    life, doc = export_offline()
    child_class = f"urn:aidtrail:batch:{life.child}"
    child = [e for e in doc["epcisBody"]["eventList"] if e.get("quantityList", [{}])[0].get("epcClass") == child_class]
    assert [(e["bizStep"], e["disposition"]) for e in child] == [
        ("picking", "in_progress"),
        ("departing", "in_transit"),
        ("arriving", "in_transit"),
        ("loading", "in_transit"),
        ("departing", "in_transit"),
        ("accepting", "in_progress"),
        ("receiving", "available"),
    ]
    [split] = [e for e in doc["epcisBody"]["eventList"] if e["type"] == "TransformationEvent"]
    assert split["inputQuantityList"] == [
        {"epcClass": f"urn:aidtrail:batch:{life.root}", "quantity": 600, "uom": "H87"}
    ]
    assert split["outputQuantityList"][0]["epcClass"] == child_class
    inspected = [e for e in doc["epcisBody"]["eventList"] if e.get("bizStep") == "inspecting"]
    assert {e["disposition"]: e["quantityList"][0]["quantity"] for e in inspected[:3]} == {
        "conformant": 900,
        "non_conformant": 30,
        "unavailable": 20,
    }
    received = next(e for e in doc["epcisBody"]["eventList"] if e.get("bizStep") == "receiving")
    assert received["readPoint"] == {"id": "urn:aidtrail:site:wh-wuhan-1"}
    assert received["sourceList"] == [{"type": "owning_party", "source": "urn:aidtrail:donor:donor-jingdong"}]


@pytest.mark.parametrize(
    ("breakage", "problem"),
    [
        (lambda e: e.update(action="MOVE"), "action 'MOVE'"),
        (lambda e: e.update(bizStep="teleporting"), "bizStep 'teleporting'"),
        (lambda e: e.update(disposition="lost"), "disposition 'lost'"),
        (lambda e: e.pop("eventTimeZoneOffset"), "eventTimeZoneOffset"),
        (lambda e: e.update(quantityList=[]), "quantityList"),
        (lambda e: e.update(colour="red"), "field 'colour'"),
        (lambda e: e["quantityList"][0].update(uom="pieces"), "uom 'pieces'"),
    ],
)
def test_the_validator_catches_each_rule(breakage: Any, problem: str) -> None:
    _, doc = export_offline()
    breakage(doc["epcisBody"]["eventList"][1])
    assert any(problem in p for p in validate_document(doc)), validate_document(doc)
