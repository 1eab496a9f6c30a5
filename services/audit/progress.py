"""A rich progress bar with events per second for long replays; silent when stderr is not a terminal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text


class RateColumn(ProgressColumn):
    """Events per second: the throughput an operator wants to see on a replay of millions of events."""

    def render(self, task: Task) -> Text:
        speed = task.speed
        return Text(f"{speed:,.0f} events/s" if speed else "- events/s", style="progress.data.speed")


@contextmanager
def replay_progress(enabled: bool, total: int, console: Console | None = None) -> Iterator[Callable[[int], None]]:
    """Yields `advance(n)`. Disabled (a no-op) unless asked for and stderr is a terminal."""
    console = console or Console(stderr=True)
    if not enabled or not console.is_terminal:
        yield lambda _n: None
        return
    columns = (
        TextColumn("[bold]replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("replay", total=total or None)
        yield lambda n: progress.advance(task, n)
