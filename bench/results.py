"""One row of the results table: ours, the baseline measured in the same run, their ratio and the target.

Ratios come first because absolute figures on a shared, noisy machine mean little on their own; the baseline run
next to ours absorbs most of the noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Direction(StrEnum):
    """Whether the ratio must reach the target from below (throughput) or stay under it (memory, time)."""

    AT_LEAST = ">="
    AT_MOST = "<="


@dataclass(frozen=True, slots=True)
class Target:
    direction: Direction
    limit: float
    on: str = "ratio"

    def met(self, value: float) -> bool:
        if self.direction is Direction.AT_LEAST:
            return value >= self.limit
        return value <= self.limit

    def describe(self) -> str:
        return f"{self.on} {self.direction.value} {self.limit:g}"


@dataclass(frozen=True, slots=True)
class Row:
    """`checked` is the figure the target applies to: the ratio, or an absolute value such as p99 in seconds."""

    what: str
    ours: str
    baseline: str
    ratio: float
    target: Target | None
    checked: float
    notes: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        """None for a context row (no target of its own, e.g. p50 next to the p99 that has one)."""
        return None if self.target is None else self.target.met(self.checked)


def ratio(ours: float, baseline: float) -> float:
    """Zero baseline gives 0.0 rather than a crash: the row still prints and the notes say what failed."""
    return ours / baseline if baseline else 0.0


def fmt_rate(per_second: float) -> str:
    return f"{per_second:,.0f}/s"


def fmt_bytes(count: float) -> str:
    return f"{count / 2**20:,.0f} MiB"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def fmt_seconds(seconds: float) -> str:
    return f"{seconds:,.2f} s"
