"""The request-limit checks on their own (no service needed): the nesting scan agrees with a real parser's depth.

The scan in `shared.web.limits` works on bytes without recursion or parsing, so it is checked here against the
depth of generated JSON documents, with strings full of brackets, quotes and backslashes to trip it up.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.web.limits import RequestRefused, check_json, describe_size, json_depth_exceeds

TRICKY_TEXT = st.text(alphabet='[]{}"\\,:ab \u00e9\u4e2d', max_size=12)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | TRICKY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TRICKY_TEXT, inner, max_size=3),
    max_leaves=60,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(item) for item in value.values()), default=0)
    return 0


def nested(levels: int) -> Any:
    value: Any = 1
    for level in range(levels):
        value = [value] if level % 2 else {"k": value}
    return value


@settings(max_examples=300, derandomize=True, deadline=None)
@given(value=JSON_VALUES, limit=st.integers(min_value=4, max_value=12))
def test_the_nesting_scan_agrees_with_the_parsed_depth(value: Any, limit: int) -> None:
    body = json.dumps(value, ensure_ascii=False).encode()
    assert json_depth_exceeds(body, limit) == (depth(value) > limit)


@pytest.mark.parametrize("levels", [4, 31, 32, 33, 64, 5000])
def test_the_limit_is_exact(levels: int) -> None:
    body = json.dumps(nested(levels)).encode() if levels < 900 else b"[" * levels + b"]" * levels
    assert json_depth_exceeds(body, 32) == (levels > 32)


def test_a_refusal_names_the_limit_and_the_fix() -> None:
    with pytest.raises(RequestRefused) as refused:
        check_json(b"[" * 100 + b"]" * 100, 32)
    assert refused.value.status_code == 422
    assert refused.value.body["error"]["code"] == "json_too_deep"
    assert "32 levels" in refused.value.body["error"]["message"]


@pytest.mark.parametrize(
    ("size", "shown"), [(512, "512 bytes"), (4096, "4 KiB"), (1024 * 1024, "1.0 MiB"), (3 * 1024 * 1024, "3.0 MiB")]
)
def test_sizes_are_shown_in_readable_units(size: int, shown: str) -> None:
    assert describe_size(size) == shown
