"""Payload JSON schemas for AsyncAPI components, from the pydantic models.

pydantic nests shared definitions (enums, sub-objects) under `$defs` in each model's schema; AsyncAPI wants one
flat `components/schemas`. We ask pydantic to point its references there and hoist every `$defs` entry, so
`Unit` or `ShipmentLeg` is defined once however many payloads use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.events.batch_events import Payload

SCHEMAS_REF = "#/components/schemas/"


class SchemaConflict(ValueError):
    """Two different definitions want the same component name; silently keeping one would lie to readers."""


def schema_ref(name: str) -> dict[str, str]:
    return {"$ref": SCHEMAS_REF + name}


def payload_schema(model: type[Payload]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model's own schema and the definitions it refers to, with references pointing at components."""
    schema = model.model_json_schema(ref_template=SCHEMAS_REF + "{model}")
    definitions = schema.pop("$defs", {})
    return schema, definitions


def add_component(components: dict[str, Any], name: str, schema: dict[str, Any]) -> None:
    known = components.get(name)
    if known is not None and known != schema:
        raise SchemaConflict(f"two different schemas are both named {name!r}; rename one of the pydantic models")
    components[name] = schema


def payload_components(models: Iterable[type[Payload]]) -> dict[str, Any]:
    """Every payload schema under its class name, plus every definition they share, sorted by name."""
    components: dict[str, Any] = {}
    for model in models:
        schema, definitions = payload_schema(model)
        for name, definition in definitions.items():
            add_component(components, name, definition)
        add_component(components, model.__name__, schema)
    return dict(sorted(components.items()))
