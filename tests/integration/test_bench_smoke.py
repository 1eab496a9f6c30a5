"""`python -m bench --quick` keeps working: it completes and produces every row. No timing is asserted anywhere:
the benchmark measures, it does not judge (the figures live in bench/RESULTS.md)."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
EXPECTED_ROWS = (
    "replay-and-fold events/s, 300 events",
    "replay-and-fold events/s, 3,000 events",
    "replay peak RSS, 3,000 vs 300 events",
    "replay time growth, 3,000 vs 300 events",
    "commands/s over HTTP, sqlite",
    "commands/s over HTTP, postgres",
    "propagation pledge -> ",
)
DEADLINE_S = 600


@pytest.mark.kafka
@pytest.mark.postgres
def test_quick_bench_completes_with_every_row(kafka_bootstrap: str, tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    env = {**os.environ, "AIDTRAIL_KAFKA_BOOTSTRAP": kafka_bootstrap}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--results", str(results)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    table = _table_rows(results.read_text(encoding="utf-8"))
    for expected in EXPECTED_ROWS:
        assert any(what.startswith(expected) for what in table), f"no row {expected!r} in {sorted(table)}"
    assert sum("propagation" in what for what in table) == 2, "p50 and p99"
    for what, ratio in table.items():
        assert math.isfinite(ratio), f"row {what!r} has ratio {ratio}"


def _table_rows(markdown: str) -> dict[str, float]:
    """`what` -> ratio of every row of the appended markdown table."""
    rows = {}
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and re.fullmatch(r"-?\d+(\.\d+)?", cells[1]):
            rows[cells[0]] = float(cells[1])
    return rows
