"""The broker's maximum heap comes from AIDTRAIL_KAFKA_HEAP, and a malformed value is refused with advice."""

from __future__ import annotations

import pytest

from shared.broker.errors import BrokerToolError
from shared.broker.process import DEFAULT_HEAP, HEAP_ENV, max_heap


def test_default_heap_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HEAP_ENV, raising=False)
    assert max_heap() == DEFAULT_HEAP


def test_heap_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HEAP_ENV, "2g")
    assert max_heap() == "2g"


@pytest.mark.parametrize("value", ["2 GB", "0m", "-1g", "lots"])
def test_malformed_heap_is_refused_with_an_example(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(HEAP_ENV, value)
    with pytest.raises(BrokerToolError, match=r"e\.g\. 768m or 2g"):
        max_heap()
