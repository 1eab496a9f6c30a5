"""`python -m bench [--quick] [--sizes N ...]`: every row measured side by side with its baseline, then appended
to bench/RESULTS.md with the machine and the date. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from bench import commands_bench, latency_bench, replay_bench
from bench.environment import BACKENDS, kafka_bootstrap, workdir
from bench.machine import this_machine
from bench.report import RESULTS, append, show
from bench.results import Row
from bench.servers import REPO_ROOT, ServerFailed

PARTS = ("replay", "commands", "latency")
console = Console(stderr=True)


@dataclass(frozen=True)
class Config:
    sizes: list[int]
    replay: str
    replay_rounds: int
    fresh_log: bool
    backends: list[str]
    load: commands_bench.LoadPlan
    latency: latency_bench.LatencyPlan
    parts: list[str]
    results: Path | None


def parse(argv: list[str]) -> Config:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes and a few seconds of load (< ~60 s)")
    parser.add_argument("--sizes", type=int, nargs="+", help="replay log sizes (default 100000 1000000)")
    parser.add_argument(
        "--rounds", type=int, help="alternating rounds of ours and baseline per command row (default 5; quick 1)"
    )
    parser.add_argument("--replay-rounds", type=int, help="rounds of the replay rows (default 2; quick 1)")
    parser.add_argument("--seconds", type=float, help="measured seconds per command-load run (default 8)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent HTTP clients (default 8)")
    parser.add_argument("--rate", type=float, default=200.0, help="steady commands/s of the latency row")
    parser.add_argument("--latency-seconds", type=float, help="seconds of steady load (default 30; quick 1)")
    parser.add_argument("--latency-consumer", choices=["auto", "warehouse", "projection"], default="auto")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS), help="run only these parts")
    parser.add_argument("--fresh-log", action="store_true", help="write the replay logs again even if present")
    parser.add_argument(
        "--replay", choices=["auto", "auditor", "fold"], default="auto", help="ours: auditor (auto when present)"
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown file to append to")
    parser.add_argument(
        "--code-root", type=Path, default=REPO_ROOT, help="run our servers from this tree's shared/ and services/"
    )
    parser.add_argument("--no-append", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    quick = args.quick
    return Config(
        sizes=args.sizes or ([300, 3000] if quick else [100_000, 1_000_000]),
        replay=args.replay,
        replay_rounds=args.replay_rounds or (1 if quick else 2),
        fresh_log=args.fresh_log,
        backends=args.backends,
        load=commands_bench.LoadPlan(
            seconds=args.seconds or (1.5 if quick else 8.0),
            concurrency=args.concurrency,
            rounds=args.rounds or (1 if quick else 5),
            warmup=20 if quick else 100,
            code_root=args.code_root.resolve(),
        ),
        latency=latency_bench.LatencyPlan(
            rate=args.rate,
            seconds=args.latency_seconds or (1.0 if quick else 30.0),
            consumer=_latency_consumer(args.latency_consumer),
            code_root=args.code_root.resolve(),
        ),
        parts=args.only,
        results=None if args.no_append else args.results,
    )


def _latency_consumer(choice: str) -> str:
    """auto: the real warehouse once it exists (services/warehouse/bootstrap.py), the stand-in until then."""
    if choice != "auto":
        return choice
    return "warehouse" if importlib.util.find_spec("services.warehouse.bootstrap") else "projection"


async def run(config: Config) -> list[Row]:
    kafka = await kafka_bootstrap()
    rows: list[Row] = []
    async with workdir() as scratch:
        if "replay" in config.parts:
            console.log(f"replay: sizes {config.sizes}, {config.replay_rounds} rounds")
            rows += await replay_bench.measure(
                config.sizes, kafka, config.replay_rounds, config.fresh_log, config.replay
            )
        if "commands" in config.parts:
            for backend in config.backends:
                console.log(f"commands: {backend}, {config.load}")
                rows.append(await commands_bench.measure(backend, kafka, scratch, config.load))
        if "latency" in config.parts:
            console.log(f"latency: {config.latency}")
            rows += await _latency(kafka, scratch, config.latency)
    return rows


async def _latency(kafka: str, scratch: Path, plan: latency_bench.LatencyPlan) -> list[Row]:
    try:
        return await latency_bench.measure(kafka, scratch, plan)
    except ServerFailed as exc:
        if plan.consumer != "warehouse":
            raise
        console.log(f"[yellow]warehouse did not start; measuring the projection stand-in instead[/]\n{exc}")
        fallback = latency_bench.LatencyPlan(plan.rate, plan.seconds, "projection", plan.code_root)
        return await latency_bench.measure(kafka, scratch, fallback)


def main(argv: list[str]) -> int:
    config = parse(argv)
    began = time.monotonic()
    rows = asyncio.run(run(config))
    machine = this_machine()
    show(rows, machine)
    if config.results is not None:
        command = shlex.join(["python", "-m", "bench", *argv])
        path = append(rows, machine, command, time.monotonic() - began, config.results)
        console.log(f"appended to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
