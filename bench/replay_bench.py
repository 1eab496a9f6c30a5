"""Rows: replay-and-fold throughput per log size, its peak memory, and how its time grows with the log.

Each replay runs in a subprocess (bench.replay_worker) so that peak RSS is its own. Ours and the raw baseline
alternate over the rounds and the median is kept. Ours is the auditor's replay when services/audit has one, the
shared fold loop (bench.fold_loop) until then; the rows say which.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
from dataclasses import dataclass
from typing import Any

import orjson

from bench.auditor import find_replay, where
from bench.eventlog import check_lifecycles, ensure_log
from bench.results import Direction, Row, Target, fmt_bytes, fmt_rate, fmt_seconds, ratio
from bench.servers import REPO_ROOT, server_env

THROUGHPUT_TARGET = Target(Direction.AT_LEAST, 0.6)
MEMORY_TARGET = Target(Direction.AT_MOST, 1.2)
WORKER_DEADLINE_S = 1800.0


class ReplayFailed(RuntimeError):
    """A replay worker failed; the message has its stderr."""


@dataclass(frozen=True)
class Replay:
    mode: str
    events: int
    seconds: float
    peak_rss: int
    detail: dict[str, Any]

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def our_mode(choice: str = "auto") -> tuple[str, str]:
    """auto: the auditor's replay when services/audit has one, the shared fold loop until then."""
    replay = find_replay() if choice in ("auto", "auditor") else None
    if replay is not None:
        return "auditor", where(replay)
    if choice == "auditor":
        raise ReplayFailed("--replay auditor: services/audit has no replay(settings, ...) yet")
    return "fold", "bench.fold_loop" + (" (auditor not there yet)" if choice == "auto" else "")


async def run_worker(mode: str, prefix: str, size: int, kafka: str) -> Replay:
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "bench.replay_worker", mode, prefix, str(size), "--bootstrap", kafka],
        cwd=REPO_ROOT,
        env=server_env({}),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), WORKER_DEADLINE_S)
    if process.returncode != 0:
        raise ReplayFailed(f"replay worker {mode} on {size} events failed:\n{err.decode()[-3000:]}")
    data = orjson.loads(out.splitlines()[-1])
    return Replay(mode, data["events"], data["seconds"], data["peak_rss"], data["detail"] | {"errors": data["errors"]})


async def measure_size(
    size: int, kafka: str, rounds: int, fresh: bool, mode: str
) -> tuple[list[Replay], list[Replay], bool]:
    settings, written = await ensure_log(kafka, size, fresh=fresh)
    ours: list[Replay] = []
    raw: list[Replay] = []
    for round_no in range(rounds):
        order = ("raw", mode) if round_no % 2 == 0 else (mode, "raw")
        for which in order:
            result = await run_worker(which, settings.topic_prefix, size, kafka)
            (raw if which == "raw" else ours).append(result)
    return ours, raw, written


def _median(replays: list[Replay], key: str) -> float:
    return float(statistics.median(getattr(r, key) for r in replays))


async def measure(sizes: list[int], kafka: str, rounds: int, fresh: bool = False, choice: str = "auto") -> list[Row]:
    check_lifecycles()
    mode, label = our_mode(choice)
    measured = {size: await measure_size(size, kafka, rounds, fresh, mode) for size in sizes}
    rows = [_throughput_row(size, ours, raw, written, label) for size, (ours, raw, written) in measured.items()]
    small, large = min(sizes), max(sizes)
    if large > small:
        rows.append(_memory_row(small, large, measured[small][0], measured[large][0]))
        rows.append(_growth_row(small, large, measured[small][0], measured[large][0]))
    return rows


def _throughput_row(size: int, ours: list[Replay], raw: list[Replay], written: bool, label: str) -> Row:
    mine, base = _median(ours, "rate"), _median(raw, "rate")
    errors = sum(int(r.detail.get("errors", 0)) for r in ours)
    log = "log written in this run" if written else "log reused (same generator version)"
    return Row(
        what=f"replay-and-fold events/s, {size:,} events",
        ours=fmt_rate(mine),
        baseline=fmt_rate(base),
        ratio=ratio(mine, base),
        target=THROUGHPUT_TARGET,
        checked=ratio(mine, base),
        notes=f"ours = {label}; {len(ours)} rounds; {log}" + (f"; {errors} fold errors" if errors else ""),
        extra={"ours_per_s": mine, "baseline_per_s": base},
    )


def _memory_row(small: int, large: int, at_small: list[Replay], at_large: list[Replay]) -> Row:
    low, high = _median(at_small, "peak_rss"), _median(at_large, "peak_rss")
    return Row(
        what=f"replay peak RSS, {large:,} vs {small:,} events",
        ours=fmt_bytes(high),
        baseline=fmt_bytes(low),
        ratio=ratio(high, low),
        target=MEMORY_TARGET,
        checked=ratio(high, low),
        notes=f"ours at {large // small}x the events; each replay in its own process (ru_maxrss)",
        extra={"large_bytes": high, "small_bytes": low},
    )


def _growth_row(small: int, large: int, at_small: list[Replay], at_large: list[Replay]) -> Row:
    low, high = _median(at_small, "seconds"), _median(at_large, "seconds")
    factor = large // small
    return Row(
        what=f"replay time growth, {large:,} vs {small:,} events",
        ours=fmt_seconds(high),
        baseline=fmt_seconds(low),
        ratio=ratio(high, low),
        target=Target(Direction.AT_MOST, factor * 1.1),
        checked=ratio(high, low),
        notes=f"{factor}x the events; linear would be {factor}x",
        extra={"large_s": high, "small_s": low},
    )
