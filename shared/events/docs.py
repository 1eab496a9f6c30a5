"""Generates the README's event catalogue and state table from the code, so the docs cannot drift from it.

`aidtrail docs` rewrites the marked sections of README.md; a test fails when they are stale.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from shared.domain.batch_fold import ALLOWED
from shared.events.batch_events import BATCH_PAYLOADS, Payload
from shared.events.reference_events import REFERENCE_PAYLOADS

MARKER = "<!-- generated:{name} -->"
END_MARKER = "<!-- /generated:{name} -->"


def _field_type(schema: dict[str, Any]) -> str:
    if "anyOf" in schema:
        return " or ".join(_field_type(option) for option in schema["anyOf"] if option.get("type") != "null")
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if schema.get("type") == "array":
        return f"list of {_field_type(schema.get('items', {}))}"
    return str(schema.get("format") or schema.get("type") or "object")


def _fields(model: type[Payload]) -> str:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    parts = []
    for name, prop in schema.get("properties", {}).items():
        optional = "" if name in required else "?"
        parts.append(f"`{name}{optional}`: {_field_type(prop)}")
    return "<br>".join(parts)


def events_markdown() -> str:
    rows = ["| topic | ce_type | payload fields (`?` = optional) | meaning |", "|---|---|---|---|"]
    for topic, models in (("batch", BATCH_PAYLOADS), ("reference", REFERENCE_PAYLOADS)):
        for model in models:
            meaning = " ".join((model.__doc__ or "").split()) if model.__doc__ != Payload.__doc__ else ""
            rows.append(f"| {topic} | `{model.event_type}` | {_fields(model)} | {meaning} |")
    return "\n".join(rows)


def states_markdown() -> str:
    rows = ["| state | events allowed next |", "|---|---|"]
    for state, events in ALLOWED.items():
        name = state.value if state else "(new stream)"
        rows.append(f"| `{name}` | {', '.join(f'`{e}`' for e in events) or 'none: final'} |")
    return "\n".join(rows)


SECTIONS = {"events": events_markdown, "states": states_markdown}


def render(text: str) -> str:
    for name, build in SECTIONS.items():
        start, end = MARKER.format(name=name), END_MARKER.format(name=name)
        pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
        text = pattern.sub(lambda _m, b=build, s=start, e=end: f"{s}\n{b()}\n{e}", text)  # type: ignore[misc]
    return text


def update_readme(path: Path) -> bool:
    """Rewrite the generated sections; True if anything changed."""
    current = path.read_text()
    updated = render(current)
    if updated != current:
        path.write_text(updated)
    return updated != current
