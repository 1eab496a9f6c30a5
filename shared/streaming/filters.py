"""Which events a stream sends: the client's filters, narrowed by what its token may see.

Matching rules (docs/streaming.md repeats them for client authors):

* `type` (repeatable, OR): exact `ce_type`, or a prefix when the value ends with `.` or `.*`.
* `batch_id`: batch events of that batch, and events that name it (a split's parent or child, the shipment
  planned for it, the pledge that created it).
* `shipment_id`, `site_id`, `recipient_id`: events that name the value in their payload, and batch events of
  a batch that belongs there *after* that event, according to the batch's own earlier events: its shipment,
  its current site (`location_site_id`) and its current recipient (delivered to, else allocated to, else
  designated to) exactly as the shared fold and batch_view define them.

Belonging is derived only from the batch's own stream, which is totally ordered on one partition, so the answer
for an event never depends on how partitions happened to interleave, on timing, or on where a stream resumed.
Different filters combine with AND.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.domain.batch_fold import apply
from shared.domain.batch_state import BatchState
from shared.domain.errors import DomainError
from shared.events.envelope import Envelope
from shared.events.registry import BATCH_EVENT_TYPES, InvalidPayload, UnknownEventType, parse_envelope
from shared.projections.batch_view import current_recipient

BATCH_KEYS = frozenset({"batch_id", "batch_ids", "child_batch_id", "parent_batch_id", "root_batch_id"})
SHIPMENT_KEYS = frozenset({"shipment_id"})
SITE_KEYS = frozenset({"site_id", "warehouse_id", "from_site_id", "to_site_id", "hub_site_id"})
RECIPIENT_KEYS = frozenset({"recipient_id", "designated_recipient_id", "from_recipient_id", "to_recipient_id"})


def named(data: Any, keys: frozenset[str]) -> set[str]:
    """Every string value under one of `keys`, at any depth (shipment legs, pledge lines, id lists)."""
    found: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            if key in keys:
                found.update(_strings(value))
            else:
                found.update(named(value, keys))
    elif isinstance(data, list):
        for value in data:
            found.update(named(value, keys))
    return found


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return (item for item in value if isinstance(item, str))
    return ()


def type_matches(patterns: tuple[str, ...], event_type: str) -> bool:
    if not patterns:
        return True
    for pattern in patterns:
        prefix = pattern.removesuffix("*")
        if event_type == pattern or (prefix.endswith(".") and event_type.startswith(prefix)):
            return True
    return False


@dataclass(frozen=True)
class EventFilter:
    types: tuple[str, ...] = ()
    batch_id: str | None = None
    shipment_id: str | None = None
    site_id: str | None = None
    recipient_id: str | None = None

    @property
    def needs_batch_context(self) -> bool:
        """Only these three depend on where a batch is; the stream then rebuilds the batches' context."""
        return any((self.shipment_id, self.site_id, self.recipient_id))

    def describe(self) -> dict[str, Any]:
        return {name: value for name, value in vars(self).items() if value}

    def matches(self, envelope: Envelope, state: BatchState | None) -> bool:
        """`state` is the event's batch after the event (None for reference events or unknown batches)."""
        data = envelope.data
        if not type_matches(self.types, envelope.type):
            return False
        if self.batch_id and not (
            (envelope.type in BATCH_EVENT_TYPES and envelope.subject == self.batch_id)
            or self.batch_id in named(data, BATCH_KEYS)
        ):
            return False
        if self.shipment_id and not _belongs(self.shipment_id, data, SHIPMENT_KEYS, _shipment(state)):
            return False
        if self.site_id and not _belongs(self.site_id, data, SITE_KEYS, _site(state)):
            return False
        return not self.recipient_id or _belongs(self.recipient_id, data, RECIPIENT_KEYS, _recipient(state))


def _belongs(wanted: str, data: Any, keys: frozenset[str], batch_value: str | None) -> bool:
    return batch_value == wanted or wanted in named(data, keys)


def _shipment(state: BatchState | None) -> str | None:
    return state.shipment_id if state else None


def _site(state: BatchState | None) -> str | None:
    return state.location_site_id if state else None


def _recipient(state: BatchState | None) -> str | None:
    return current_recipient(state) if state else None


class BatchContexts:
    """Each batch's state as the shared fold sees it, kept while reading, for the filters that need it.

    An event the fold refuses (the services would park it) leaves the batch's state as it was: the stream shows
    what is on the log; deciding what is valid is the consumers' job.
    """

    def __init__(self) -> None:
        self._states: dict[str, BatchState] = {}

    def __len__(self) -> int:
        return len(self._states)

    def apply(self, envelope: Envelope) -> BatchState | None:
        previous = self._states.get(envelope.subject)
        try:
            state = apply(previous, parse_envelope(envelope), envelope.subject)
        except (DomainError, UnknownEventType, InvalidPayload):
            return previous
        self._states[envelope.subject] = state
        return state
