"""Shows the rows as a rich table and appends them, with the machine and the command line, to bench/RESULTS.md.

Ratio and target come first: they are what the issue asks about. Absolute figures follow as context.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.machine import Machine
from bench.results import Row

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
COLUMNS = ("what", "ratio", "target", "met", "ours", "baseline", "notes")


def _met(row: Row) -> str:
    return {True: "yes", False: "NO", None: "-"}[row.met]


def _target(row: Row) -> str:
    return row.target.describe() if row.target else "(context)"


def cells(row: Row) -> tuple[str, ...]:
    return (row.what, f"{row.ratio:.2f}", _target(row), _met(row), row.ours, row.baseline, row.notes)


def show(rows: Sequence[Row], machine: Machine, console: Console | None = None) -> None:
    table = Table(title=f"aidtrail benchmarks - {machine.describe()}", show_lines=True)
    for column in COLUMNS:
        table.add_column(column, overflow="fold")
    for row in rows:
        style = "red" if row.met is False else None
        table.add_row(*cells(row), style=style)
    (console or Console()).print(table)


def markdown(rows: Sequence[Row], machine: Machine, command: str, elapsed_s: float) -> str:
    lines = [
        f"## {machine.date} - {machine.cpu}, {machine.cores} cores, {machine.ram_gib:.0f} GiB",
        "",
        f"`{command}` ({elapsed_s:.0f} s; {machine.system}, Python {machine.python})",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in cells(row)) + " |" for row in rows]
    return "\n".join(lines) + "\n\n"


def append(rows: Sequence[Row], machine: Machine, command: str, elapsed_s: float, path: Path = RESULTS) -> Path:
    if not path.exists():
        path.write_text("# Benchmark results\n\nEach run appends a section; see bench/README.md.\n\n", encoding="utf-8")
    with path.open("a", encoding="utf-8") as out:
        out.write(markdown(rows, machine, command, elapsed_s))
    return path
