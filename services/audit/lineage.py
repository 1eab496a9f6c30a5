"""The lineage tree of a batch: up through its parents to the pledged root, and down through every split to
each receipt, so a single pledge line can be followed to every hospital that signed for part of it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.audit.tracker import BatchTrack


@dataclass(slots=True)
class LineageNode:
    batch_id: str
    status: str
    quantity: int
    delivered: int
    delivered_to: str | None
    confirmed: int
    damaged: int
    selected: bool = False
    children: list[LineageNode] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "status": self.status,
            "quantity": self.quantity,
            "delivered": self.delivered,
            "delivered_to": self.delivered_to,
            "confirmed": self.confirmed,
            "damaged": self.damaged,
            "selected": self.selected,
            "children": [child.to_json() for child in self.children],
        }

    def walk(self) -> list[LineageNode]:
        nodes = [self]
        for child in self.children:
            nodes.extend(child.walk())
        return nodes


def ancestry(tracks: Mapping[str, BatchTrack], batch_id: str) -> list[str]:
    """[root, ..., parent, batch_id]; stops at a parent missing from the log (a lineage finding of its own)."""
    path = [batch_id]
    seen = {batch_id}
    while True:
        track = tracks.get(path[0])
        parent = track.state.parent_batch_id if track and track.state else None
        if parent is None or parent in seen or parent not in tracks:
            return path
        path.insert(0, parent)
        seen.add(parent)


def lineage(tracks: Mapping[str, BatchTrack], batch_id: str) -> LineageNode | None:
    path = ancestry(tracks, batch_id)
    return _node(tracks, path[0], batch_id, depth=0)


def _node(tracks: Mapping[str, BatchTrack], batch_id: str, selected: str, depth: int) -> LineageNode | None:
    track = tracks.get(batch_id)
    if track is None or track.state is None or depth > 100:
        return None
    state = track.state
    node = LineageNode(
        batch_id=batch_id,
        status=state.status.value,
        quantity=state.quantity_pledged if state.parent_batch_id is None else state.accepted,
        delivered=state.delivered,
        delivered_to=state.delivered_to_recipient_id,
        confirmed=state.confirmed_received,
        damaged=state.confirmed_damaged,
        selected=batch_id == selected,
    )
    for child_id, _ in state.children:
        child = _node(tracks, child_id, selected, depth + 1)
        if child is not None:
            node.children.append(child)
    return node
