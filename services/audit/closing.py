"""Summary replays: a batch family whose batches have all reached a final state is checked, totalled and
dropped, so that memory holds the open batches, not the history.

A family is a root batch and every batch split off it (they share `root_batch_id`); the cross-batch rules
(lineage, a child holds what its parent split off) never look outside it. It is closed when its last open
member reaches a final state (confirmed, cancelled, written off, rejected: states that accept no event), and
only if every parent and child its members name is among them; any other family is kept and checked at the
end with the rest, as in a full replay. Closing runs the very checks of the end (`run_checks`) on the family,
so a summary replay reports the same checks, counts and totals, with findings listed in closing order.

What a closed batch leaves behind is its final status under a 64-bit hash of its id: an event that arrives
for it later is refused with the same finding as in a full replay (a final state accepts nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from services.audit.checks import run_checks
from services.audit.findings import FindingLog
from services.audit.sla import SlaPolicy
from services.audit.totals import Totals, compute_totals
from services.audit.tracker import BatchTrack
from shared.domain.batch_state import BatchState, BatchStatus

FINAL = frozenset({BatchStatus.CONFIRMED, BatchStatus.CANCELLED, BatchStatus.WRITTEN_OFF, BatchStatus.REJECTED})


@dataclass(slots=True)
class _Family:
    members: list[str] = field(default_factory=list)
    open: int = 0


class FamilyCloser:
    def __init__(self, findings: FindingLog, sla: SlaPolicy, now: datetime, partial: bool):
        self.findings = findings
        self.sla = sla
        self.now = now
        self.partial = partial
        self.totals = Totals({}, {})
        self.closed: dict[int, BatchStatus] = {}
        self._families: dict[str, _Family] = {}
        self._kept: set[str] = set()  # families that cannot be closed early: checked at the end

    def born(self, track: BatchTrack, state: BatchState) -> None:
        key = _family_key(state)
        if hash(key) in self.closed or key in self._kept:
            self._kept.add(key)  # a late member of a closed family: leave it for the end
            return
        family = self._families.setdefault(key, _Family())
        family.members.append(track.batch_id)
        family.open += state.status not in FINAL

    def settled(self, tracks: dict[str, BatchTrack], before: BatchState | None, after: BatchState) -> None:
        """After an applied event: close the family if this was its last open member reaching a final state."""
        if after.status not in FINAL or (before is not None and before.status in FINAL):
            return
        key = _family_key(after)
        family = self._families.get(key)
        if family is None:
            return
        family.open -= 1
        if family.open == 0:
            self._close(key, family, tracks)

    def closed_status(self, batch_id: str) -> BatchStatus | None:
        return self.closed.get(hash(batch_id))

    def _close(self, key: str, family: _Family, tracks: dict[str, BatchTrack]) -> None:
        members = {batch_id: tracks[batch_id] for batch_id in family.members}
        if not _self_contained(members):
            del self._families[key]
            self._kept.add(key)
            return
        run_checks(members, self.findings, self.sla, self.now, partial=self.partial)
        states = [track.state for track in members.values() if track.state is not None]
        compute_totals(states, into=self.totals)
        for state in states:
            self.closed[hash(state.batch_id)] = state.status
            del tracks[state.batch_id]
        del self._families[key]


def _family_key(state: BatchState) -> str:
    return state.root_batch_id or state.batch_id


def _self_contained(members: dict[str, BatchTrack]) -> bool:
    for track in members.values():
        state = track.state
        if state is None:
            return False
        if state.parent_batch_id is not None and state.parent_batch_id not in members:
            return False
        if any(child not in members for child, _ in state.children):
            return False
    return True
