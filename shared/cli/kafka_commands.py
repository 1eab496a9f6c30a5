"""`aidtrail kafka ...`: fetch, start, stop and inspect the local Apache Kafka broker (KRaft).

Thin layer over shared.broker: it only turns results into rich output and errors into a red
message plus a nonzero exit, so scripts and CI can rely on the exit code.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shared.broker import (
    DEFAULT_CLUSTER_SIZE,
    BrokerError,
    BrokerStatus,
    fetch_jars,
    kafka_version,
    start,
    status,
    stop,
)
from shared.broker.local_kafka import DEFAULT_START_TIMEOUT_S, DEFAULT_STOP_TIMEOUT_S

EXIT_ERROR = 1
EXIT_NOT_RUNNING = 3  # LSB "program is not running", as `systemctl status` uses

T = TypeVar("T")

kafka_app = typer.Typer(no_args_is_help=True, help="Run the local Apache Kafka broker (KRaft).")
out = Console()
err = Console(stderr=True)

_CLUSTER_FLAG = typer.Option(False, "--cluster", help="Act on the multi-node cluster, not the single node.")


@kafka_app.command("fetch")
def fetch_command(
    force: bool = typer.Option(False, "--force", help="Fetch again even if the jars are current."),
) -> None:
    """Fetch the pinned Kafka jars from Maven Central (done automatically by start)."""
    lib = _guard(lambda: fetch_jars(force=force))
    out.print(f"Kafka [bold]{kafka_version()}[/] jars ready in {lib}")


@kafka_app.command("start")
def start_command(
    cluster: int = typer.Option(
        1, "--cluster", min=1, help=f"Number of nodes; 1 = single node, e.g. {DEFAULT_CLUSTER_SIZE} = cluster."
    ),
    timeout: float = typer.Option(DEFAULT_START_TIMEOUT_S, "--timeout", help="Seconds to wait for it to answer."),
) -> None:
    """Start the broker (or cluster) in the background; a no-op if it already answers."""
    result = _guard(lambda: start(cluster_size=cluster, timeout=timeout))
    what = "single node" if cluster == 1 else f"{cluster}-node cluster"
    if result.already_running:
        pids = _ids(tuple(node.pid for node in result.status.nodes if node.pid))
        out.print(f"Kafka {what} already running on [bold]{result.bootstrap}[/] (pid {pids})")
    else:
        formatted = " (storage formatted)" if result.formatted else ""
        out.print(
            f"Kafka {result.status.kafka_version} {what} started on [bold]{result.bootstrap}[/] "
            f"in {result.elapsed_s:.1f} s{formatted}"
        )
    _print_status(result.status)


@kafka_app.command("stop")
def stop_command(
    cluster: bool = _CLUSTER_FLAG,
    timeout: float = typer.Option(DEFAULT_STOP_TIMEOUT_S, "--timeout", help="Seconds before SIGKILL."),
) -> None:
    """Stop the broker (SIGTERM, then SIGKILL after the timeout); fine if it is not running."""
    result = _guard(lambda: stop(cluster=cluster, timeout=timeout))
    if not result.stopped:
        out.print("Kafka was not running")
        return
    forced = f"; killed after timeout: {_ids(result.forced)}" if result.forced else ""
    out.print(f"Stopped Kafka node(s) {_ids(result.stopped)} in {result.elapsed_s:.1f} s{forced}")


@kafka_app.command("status")
def status_command(cluster: bool = _CLUSTER_FLAG) -> None:
    """Show whether the broker runs and answers; exit code 3 when it is not running."""
    current = _guard(lambda: status(cluster=cluster))
    _print_status(current)
    if not current.running:
        raise typer.Exit(EXIT_NOT_RUNNING)


def _print_status(current: BrokerStatus) -> None:
    data_root = os.path.commonpath([str(node.data_dir) for node in current.nodes])
    table = Table(
        title=f"Kafka {current.kafka_version} ({current.layout})",
        title_justify="left",
        caption=f"data and logs under {data_root}",
        caption_justify="left",
    )
    for column in ("node", "pid", "bootstrap", "controller", "state"):
        table.add_column(column, no_wrap=True)
    for node in current.nodes:
        table.add_row(
            str(node.node_id),
            str(node.pid) if node.pid else "-",
            node.bootstrap,
            node.controller,
            _state(node.running, node.answering),
        )
    out.print(table)


def _state(running: bool, answering: bool) -> str:
    if not running:
        return "[red]not running[/]"
    return "[green]answering[/]" if answering else "[yellow]running, not answering[/]"


def _ids(node_ids: tuple[int, ...]) -> str:
    return ", ".join(str(node_id) for node_id in node_ids)


def _guard(action: Callable[[], T]) -> T:
    """One place that turns tooling failures into a readable message and exit code 1."""
    try:
        return action()
    except BrokerError as exc:
        # Log tails contain "[...]", which rich would read as markup: escape them.
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_ERROR) from exc
