"""`python -m bench.ab TREE [TREE ...]`: the commands row of the pledge service run with the code of other trees
(copies of shared/ and services/, e.g. `git archive <commit> shared services | tar -x -C /tmp/before`) next to
this one, alternating runs. This is how the before/after figures in bench/RESULTS.md were taken on a noisy
machine: drift hits every variant alike, the medians compare.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.commands_bench import LoadPlan, one_run
from bench.environment import kafka_bootstrap, workdir
from bench.load import LoadResult
from bench.servers import REPO_ROOT


async def compare(trees: dict[str, Path], backend: str, plan: LoadPlan) -> dict[str, list[LoadResult]]:
    kafka = await kafka_bootstrap()
    runs: dict[str, list[LoadResult]] = {name: [] for name in trees}
    order = list(trees.items())
    async with workdir() as scratch:
        for round_no in range(plan.rounds):
            for name, root in order if round_no % 2 == 0 else reversed(order):
                runs[name].append(await one_run("pledge", backend, kafka, scratch, plan, code_root=root))
    return runs


def show(backend: str, runs: dict[str, list[LoadResult]]) -> None:
    table = Table(title=f"pledge commands, {backend} (median of rounds)")
    for column in ("code", "commands/s", "server CPU ms/command", "errors"):
        table.add_column(column)
    for name, results in runs.items():
        rate = statistics.median(r.rate for r in results)
        cpu = statistics.median(r.server_cpu_per_request for r in results) * 1000
        table.add_row(name, f"{rate:.1f}", f"{cpu:.2f}", str(sum(r.errors for r in results)))
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    parser.add_argument("trees", type=Path, nargs="+", help="trees holding shared/ and services/ to compare")
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--without-this-tree",
        action="store_true",
        help="compare only the given trees: this one may hold other people's uncommitted work",
    )
    args = parser.parse_args()
    trees = {str(tree): tree.resolve() for tree in args.trees}
    if not args.without_this_tree:
        trees["this tree"] = REPO_ROOT
    plan = LoadPlan(seconds=args.seconds, concurrency=args.concurrency, rounds=args.rounds)
    for backend in args.backends:
        show(backend, asyncio.run(compare(trees, backend, plan)))


if __name__ == "__main__":
    main()
