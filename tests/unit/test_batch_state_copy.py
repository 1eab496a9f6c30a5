"""The fold's cheap copy of a BatchState must be indistinguishable from `dataclasses.replace`."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from datetime import date
from typing import Any

import pytest

from shared.domain.batch_fold import apply, settle
from shared.domain.batch_state import Allocation, BatchState, BatchStatus, evolve, set_on_fresh
from tests.unit import lifecycle_builders as b


def _state() -> BatchState:
    return BatchState(
        batch_id="b1",
        status=BatchStatus.ALLOCATED,
        pledge_id="p1",
        donor_id="d1",
        item="mask",
        category="medical",
        unit="piece",
        standard="N95",
        quantity_pledged=10,
        warehouse_id="wh",
        expiry=date(2030, 1, 1),
        allocations=(Allocation("a1", "n1", "r1", 4),),
        children=(("c1", 2),),
        redesignations=((None, "r1", "boss"),),
        version=7,
    )


def test_evolve_equals_dataclasses_replace_for_every_field() -> None:
    state = _state()
    for spec in dataclasses.fields(BatchState):
        changes: dict[str, Any] = {spec.name: object()}  # a value no field holds, so a missed field shows
        assert evolve(state, **changes) == dataclasses.replace(state, **changes)
    assert evolve(state) == state and evolve(state) is not state


def test_a_copy_is_an_ordinary_frozen_hashable_picklable_state() -> None:
    copied = evolve(_state(), on_hand=3)
    assert hash(copied) == hash(dataclasses.replace(_state(), on_hand=3))
    assert pickle.loads(pickle.dumps(copied)) == copied == copy.deepcopy(copied)
    with pytest.raises(dataclasses.FrozenInstanceError):
        copied.on_hand = 4  # type: ignore[misc]


def test_an_unknown_field_is_refused_like_replace_does() -> None:
    with pytest.raises(TypeError):
        evolve(_state(), no_such_field=1)
    with pytest.raises(TypeError):
        set_on_fresh(evolve(_state()), no_such_field=1)


def test_apply_and_settle_leave_the_state_they_were_given_untouched() -> None:
    state: BatchState | None = None
    for payload in b.full_lifecycle(1000):
        before = copy.deepcopy(state)
        after = apply(state, payload, "b1")
        assert state == before and after is not state
        state = after
    assert state is not None and state.version == 10
    frozen = _state()
    assert settle(frozen).status is BatchStatus.SPLIT  # nothing on hand, one child
    assert frozen == _state()
