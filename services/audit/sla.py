"""How long a batch may stay in each phase before the audit calls it stuck.

Defaults follow the operating agreement: received but not inspected 48 h, picked but not dispatched 24 h, in
transit (dispatch to delivery, hubs included) 72 h, delivered but not confirmed 48 h, quarantined 7 days.
Thresholds come from a TOML or JSON file (`{"sla_hours": {"received": 12}}` or a flat mapping) and/or
`PHASE=HOURS` overrides; `off` or 0 disables a phase.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.domain.batch_state import BatchStatus

DEFAULT_SLA_HOURS: dict[str, float] = {
    "received": 48,
    "picked": 24,
    "in_transit": 72,
    "delivered": 48,
    "quarantined": 168,
}
PHASES = tuple(status.value for status in BatchStatus if status is not BatchStatus.AT_HUB)


class SlaError(ValueError):
    """A threshold file or override that cannot be used; the message says which key and what is allowed."""


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    hours: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_SLA_HOURS))

    def limit(self, phase: str) -> float | None:
        hours = self.hours.get(phase)
        return hours if hours else None

    def to_json(self) -> dict[str, float]:
        return {phase: hours for phase, hours in sorted(self.hours.items()) if hours}

    @classmethod
    def load(cls, path: Path | None = None, overrides: Iterable[str] = ()) -> SlaPolicy:
        hours = dict(DEFAULT_SLA_HOURS)
        if path is not None:
            hours.update(_validated(_read_file(path), str(path)))
        for text in overrides:
            phase, sep, value = text.partition("=")
            if not sep:
                raise SlaError(f"SLA override {text!r} must look like PHASE=HOURS, e.g. received=48")
            hours.update(_validated({phase.strip(): value.strip()}, "--sla"))
        return cls(hours)


def _read_file(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise SlaError(f"cannot read SLA file {path}: {exc.strerror}") from exc
    try:
        data: Any = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise SlaError(f"SLA file {path} is not valid {path.suffix.lstrip('.').upper() or 'JSON'}: {exc}") from exc
    if not isinstance(data, dict):
        raise SlaError(f"SLA file {path} must hold a mapping of phase to hours")
    table = data.get("sla_hours", data)
    if not isinstance(table, dict):
        raise SlaError(f"SLA file {path}: 'sla_hours' must be a mapping of phase to hours")
    return table


def _validated(table: Mapping[str, Any], where: str) -> dict[str, float]:
    result: dict[str, float] = {}
    for phase, value in table.items():
        if phase not in PHASES:
            raise SlaError(f"{where}: unknown phase {phase!r}; phases: {', '.join(PHASES)}")
        result[phase] = _hours(value, f"{where}: {phase}")
    return result


def _hours(value: Any, where: str) -> float:
    if isinstance(value, str) and value.lower() in ("off", "none", "0"):
        return 0.0
    try:
        hours = float(value)
    except (TypeError, ValueError):
        raise SlaError(f"{where} must be a number of hours or 'off', not {value!r}") from None
    if hours < 0:
        raise SlaError(f"{where} must not be negative")
    return hours
