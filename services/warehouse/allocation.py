"""Which open need gets which free stock, and why stock stays unallocated: pure functions, no I/O.

The order is the policy agreed for scarce goods: frontline recipients first, then the earliest deadline (a need
without a deadline comes last), then the oldest need. Whether a batch may go to a need at all is not decided
here but by the fold (`apply`), so that the designation lock and the free-stock rule have one definition; a
refusal by the fold simply moves the planner on to the next batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum

from shared.domain.batch_fold import allowed_events, apply, short_name
from shared.domain.batch_state import BatchState
from shared.domain.errors import DomainError
from shared.events.batch_events import BatchAllocated

FAR_FUTURE = datetime.max.replace(tzinfo=UTC)
ALLOCATED = short_name(BatchAllocated.event_type)


@dataclass(frozen=True, slots=True)
class OpenNeed:
    """A need as the warehouse sees it: what the recipient still lacks after the allocations already made."""

    need_id: str
    recipient_id: str
    item: str
    remaining: int
    frontline: bool
    deadline: datetime | None
    registered_at: str


class Unallocated(StrEnum):
    """Why free or quarantined stock was left where it is, as a code a client can act on."""

    QUARANTINED = "quarantined"
    EXPIRED = "expired"
    DESIGNATED_NO_NEED = "designated_recipient_has_no_need"
    DESIGNATED_NEED_COVERED = "designated_recipient_need_covered"
    NO_OPEN_NEED = "no_open_need"
    NEEDS_COVERED = "needs_covered"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Explanation:
    batch_id: str
    item: str
    quantity: int
    reason: Unallocated
    message: str


@dataclass(frozen=True, slots=True)
class PlannedAllocation:
    batch_id: str
    payload: BatchAllocated


@dataclass
class AllocationPlan:
    allocations: list[PlannedAllocation] = field(default_factory=list)
    explanations: list[Explanation] = field(default_factory=list)
    states: dict[str, BatchState] = field(default_factory=dict)

    def changed_batches(self) -> list[str]:
        """Batch ids in the order their first allocation was planned, so appends are deterministic."""
        return list(dict.fromkeys(planned.batch_id for planned in self.allocations))

    def payloads_for(self, batch_id: str) -> list[BatchAllocated]:
        return [planned.payload for planned in self.allocations if planned.batch_id == batch_id]


# --- ordering ------------------------------------------------------------------------------------------------


def priority_key(need: OpenNeed) -> tuple[bool, bool, datetime, str, str]:
    """Sort key: False sorts first, so frontline and dated needs lead; the need id only breaks exact ties."""
    return (not need.frontline, need.deadline is None, need.deadline or FAR_FUTURE, need.registered_at, need.need_id)


def order_needs(needs: Iterable[OpenNeed]) -> list[OpenNeed]:
    return sorted(needs, key=priority_key)


def is_expired(state: BatchState, today: date) -> bool:
    """A lot may still be used on its expiry date itself."""
    return state.expiry is not None and state.expiry < today


def may_take_allocation(state: BatchState) -> bool:
    """Asked of the fold's transition table, so a picked or rejected batch is never offered."""
    return ALLOCATED in allowed_events(state)


def allocatable_free(state: BatchState) -> int:
    return state.free if may_take_allocation(state) else 0


def batch_order(need: OpenNeed, states: Iterable[BatchState], today: date) -> list[BatchState]:
    """Stock designated to this recipient first (nobody else may use it), then first-expiring-first-out."""
    candidates = [
        state
        for state in states
        if state.item == need.item and allocatable_free(state) > 0 and not is_expired(state, today)
    ]
    return sorted(
        candidates,
        key=lambda s: (s.designated_recipient_id != need.recipient_id, s.expiry or date.max, s.batch_id),
    )


# --- planning ------------------------------------------------------------------------------------------------


def plan(
    stock: Iterable[BatchState],
    needs: Sequence[OpenNeed],
    today: date,
    new_allocation_id: Callable[[], str],
) -> AllocationPlan:
    """Allocate free stock to the open needs in priority order, never more than a need still lacks."""
    result = AllocationPlan(states={state.batch_id: state for state in stock})
    remaining = {need.need_id: need.remaining for need in needs}
    refusals: dict[str, str] = {}
    for rank, need in enumerate(order_needs(needs), start=1):
        for candidate in batch_order(need, result.states.values(), today):
            if remaining[need.need_id] == 0:
                break
            quantity = min(candidate.free, remaining[need.need_id])
            payload = BatchAllocated(
                allocation_id=new_allocation_id(),
                need_id=need.need_id,
                recipient_id=need.recipient_id,
                quantity=quantity,
                priority_rank=rank,
            )
            try:
                result.states[candidate.batch_id] = apply(candidate, payload, candidate.batch_id)
            except DomainError as refusal:
                refusals[candidate.batch_id] = refusal.message
                continue
            remaining[need.need_id] -= quantity
            result.allocations.append(PlannedAllocation(candidate.batch_id, payload))
    for state in result.states.values():
        result.explanations.extend(explain(state, needs, remaining, today, refusals.get(state.batch_id)))
    return result


# --- explanations --------------------------------------------------------------------------------------------


def explain(
    state: BatchState,
    needs: Sequence[OpenNeed],
    remaining: dict[str, int],
    today: date,
    refusal: str | None = None,
) -> list[Explanation]:
    """Why this batch still holds quarantined or free stock after a run; empty when nothing was left."""
    found: list[Explanation] = []
    if state.quarantined > 0:
        found.append(_quarantined(state))
    leftover = allocatable_free(state)
    if leftover > 0:
        found.append(explain_free(state, leftover, needs, remaining, today, refusal))
    return found


def explain_free(
    state: BatchState,
    leftover: int,
    needs: Sequence[OpenNeed],
    remaining: dict[str, int],
    today: date,
    refusal: str | None = None,
) -> Explanation:
    def because(reason: Unallocated, message: str) -> Explanation:
        return Explanation(state.batch_id, state.item, leftover, reason, message)

    item = state.item
    if is_expired(state, today):
        lot = f"lot {state.lot}" if state.lot else "the lot"
        return because(
            Unallocated.EXPIRED,
            f"{lot} expired on {state.expiry}; expired stock is never allocated: write it off (reason expired)",
        )
    item_needs = [need for need in needs if need.item == item]
    still_open = [need for need in item_needs if remaining.get(need.need_id, 0) > 0]
    designated = state.designated_recipient_id
    if designated is not None:
        own = [need for need in item_needs if need.recipient_id == designated]
        if not own:
            return because(
                Unallocated.DESIGNATED_NO_NEED,
                f"designated to {designated}, which has no open need for {item}; it stays free until "
                f"{designated} registers one or an admin redesignates the batch",
            )
        if not any(need in still_open for need in own):
            return because(
                Unallocated.DESIGNATED_NEED_COVERED,
                f"designated to {designated}, whose open needs for {item} are already covered; {leftover} stay free",
            )
    elif not item_needs:
        return because(Unallocated.NO_OPEN_NEED, f"no open need for {item}; {leftover} stay free")
    elif not still_open:
        return because(Unallocated.NEEDS_COVERED, f"every open need for {item} is covered; {leftover} stay free")
    return because(Unallocated.REFUSED, refusal or f"{leftover} stay free; no open need could take them")


def _quarantined(state: BatchState) -> Explanation:
    return Explanation(
        state.batch_id,
        state.item,
        state.quarantined,
        Unallocated.QUARANTINED,
        f"{state.quarantined} quarantined; resolve the quarantine (POST /batches/{state.batch_id}/quarantine/resolve) "
        "before they can be allocated",
    )
