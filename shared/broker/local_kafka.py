"""Start, stop and inspect a real Apache Kafka broker (KRaft) on loopback.

Two layouts, which can run side by side:

* single node: node 1 on 127.0.0.1:9092 (controller 9093), data in $AIDTRAIL_HOME/kafka/single;
* cluster: nodes 1..N on 19092.. (controllers 19192..), data in $AIDTRAIL_HOME/kafka/cluster/node-N.

Every node is a combined broker+controller with a static voter set. Brokers are detached
processes, so they outlive the command or test session that started them.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass

from shared.broker import process
from shared.broker.config import (
    Layout,
    NodeSpec,
    cluster_layout,
    render_properties,
    save_layout,
    saved_layout,
    single_layout,
)
from shared.broker.errors import BrokerError, BrokerStartError
from shared.broker.jars import fetch_jars, require_tool
from shared.broker.status import BrokerStatus, layout_status, run_sync, sees_all
from shared.broker.storage import cluster_id, format_storage

DEFAULT_START_TIMEOUT_S = 60.0
DEFAULT_STOP_TIMEOUT_S = 30.0
_POLL_S = 0.25


@dataclass(frozen=True)
class StartResult:
    status: BrokerStatus
    already_running: bool
    started: tuple[int, ...]
    formatted: tuple[int, ...]
    elapsed_s: float

    @property
    def bootstrap(self) -> str:
        return self.status.bootstrap


@dataclass(frozen=True)
class StopResult:
    stopped: tuple[int, ...]
    forced: tuple[int, ...]
    elapsed_s: float


# ---------------------------------------------------------------- start


async def start_async(
    cluster_size: int = 1,
    timeout: float = DEFAULT_START_TIMEOUT_S,
    client_port: int | None = None,
    controller_port: int | None = None,
) -> StartResult:
    """Start the single node (``cluster_size=1``) or an N-node cluster; a no-op if it already answers.

    Ports are base ports (cluster node N uses base+N-1). ``timeout`` counts from the spawn, so a
    first jar fetch does not eat into it. Raises BrokerToolError when java/mvn are missing and
    BrokerStartError (with the log tail) when a node dies or does not answer in time.
    """
    began = time.monotonic()
    layout = _layout_for(cluster_size, client_port, controller_port)
    current = await layout_status(layout)
    if current.running and current.answering:
        return StartResult(current, True, (), (), time.monotonic() - began)
    started, formatted = _launch(layout, [node.node_id for node in layout.nodes])
    await _wait_ready(layout, layout.nodes, time.monotonic() + timeout)
    final = await layout_status(layout)
    return StartResult(final, not started, started, formatted, time.monotonic() - began)


def start(
    cluster_size: int = 1,
    timeout: float = DEFAULT_START_TIMEOUT_S,
    client_port: int | None = None,
    controller_port: int | None = None,
) -> StartResult:
    return run_sync(start_async(cluster_size, timeout, client_port, controller_port))


async def start_node_async(node_id: int, timeout: float = DEFAULT_START_TIMEOUT_S) -> StartResult:
    """(Re)start one cluster node, e.g. after kill_node(); waits until the cluster sees it again."""
    began = time.monotonic()
    layout = saved_layout(cluster=True)
    node = layout.node(node_id)
    started, formatted = _launch(layout, [node_id])
    await _wait_ready(layout, (node,), time.monotonic() + timeout)
    final = await layout_status(layout)
    return StartResult(final, not started, started, formatted, time.monotonic() - began)


def start_node(node_id: int, timeout: float = DEFAULT_START_TIMEOUT_S) -> StartResult:
    return run_sync(start_node_async(node_id, timeout))


def _layout_for(cluster_size: int, client_port: int | None, controller_port: int | None) -> Layout:
    if cluster_size < 1:
        raise BrokerError(f"cluster_size must be at least 1, got {cluster_size}")
    if cluster_size == 1:
        return single_layout(client_port, controller_port)
    layout = cluster_layout(cluster_size, client_port, controller_port)
    previous = saved_layout(cluster=True)
    if len(previous.nodes) != cluster_size and any(node.formatted for node in previous.nodes):
        raise BrokerStartError(
            f"{previous.root} holds a {len(previous.nodes)}-node cluster; the voter set cannot change. "
            f"Stop it and delete {previous.root} to start {cluster_size} nodes."
        )
    return layout


def _launch(layout: Layout, node_ids: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Under the layout lock: write configs, format new storage, spawn nodes that are not running."""
    java = require_tool("java")
    fetch_jars()
    started: list[int] = []
    formatted: list[int] = []
    with process.locked(layout.lock_path):
        save_layout(layout)
        cid = cluster_id(layout)
        for node_id in node_ids:
            node = layout.node(node_id)
            if process.running_pid(node) is not None:
                continue
            node.data_dir.mkdir(parents=True, exist_ok=True)
            node.properties_path.write_text(render_properties(layout, node), encoding="utf-8")
            if not node.formatted:
                format_storage(java, node, cid)
                formatted.append(node_id)
            process.spawn_broker(java, node)
            started.append(node_id)
    return tuple(started), tuple(formatted)


async def _wait_ready(layout: Layout, nodes: Sequence[NodeSpec], deadline: float) -> None:
    """Poll until each node answers and sees every layout node as a live broker."""
    while True:
        for node in nodes:
            _raise_if_dead(node)
        answers = await asyncio.gather(*(sees_all(layout, node) for node in nodes))
        if all(answers):
            return
        if time.monotonic() >= deadline:
            slow = next(n for n, ok in zip(nodes, answers, strict=True) if not ok)
            raise BrokerStartError(
                f"Kafka node {slow.node_id} ({slow.bootstrap}) did not answer before the deadline; it is "
                f"left running (pid file {slow.pid_path}).\n{process.log_tail(slow)}"
            )
        await asyncio.sleep(_POLL_S)


def _raise_if_dead(node: NodeSpec) -> None:
    if process.running_pid(node) is not None:
        return
    raise BrokerStartError(f"Kafka node {node.node_id} exited during startup.\n{process.log_tail(node)}")


# ---------------------------------------------------------------- stop and kill


def stop(cluster: bool = False, timeout: float = DEFAULT_STOP_TIMEOUT_S) -> StopResult:
    """SIGTERM every running node at once (so a cluster keeps quorum while it shuts down), then SIGKILL."""
    layout = saved_layout(cluster)
    return _stop_nodes(layout, layout.nodes, timeout)


def stop_node(node_id: int, timeout: float = DEFAULT_STOP_TIMEOUT_S) -> StopResult:
    """Graceful stop of one cluster node (controlled shutdown moves its leaderships away)."""
    layout = saved_layout(cluster=True)
    return _stop_nodes(layout, (layout.node(node_id),), timeout)


def _stop_nodes(layout: Layout, nodes: Sequence[NodeSpec], timeout: float) -> StopResult:
    began = time.monotonic()
    with process.locked(layout.lock_path):
        pids = {node.node_id: pid for node in nodes if (pid := process.running_pid(node)) is not None}
        for pid in pids.values():
            process.send_signal(pid, signal.SIGTERM)
            process.send_signal(pid, signal.SIGCONT)  # a node paused by a fault test must see the TERM
        forced = []
        for node_id, pid in pids.items():
            remaining = max(0.0, began + timeout - time.monotonic())
            if not process.wait_exit(pid, remaining):
                process.send_signal(pid, signal.SIGKILL)
                process.wait_exit(pid, 10.0)
                forced.append(node_id)
            process.forget(pid)
        for node in nodes:
            process.running_pid(node)  # clears the pid file
    return StopResult(tuple(pids), tuple(forced), time.monotonic() - began)


def kill_broker(sig: int = signal.SIGKILL) -> int | None:
    """Signal the single-node broker (default kill -9) for fault tests; returns the pid or None."""
    layout = saved_layout(cluster=False)
    return _kill(layout.nodes[0], sig)


def kill_node(node_id: int, sig: int = signal.SIGKILL) -> int | None:
    """Signal one cluster node (default kill -9); returns the pid signalled or None if not running."""
    return _kill(saved_layout(cluster=True).node(node_id), sig)


def _kill(node: NodeSpec, sig: int) -> int | None:
    """After SIGKILL, wait until the process is gone so callers can rely on it being dead."""
    pid = process.running_pid(node)
    if pid is None:
        return None
    process.send_signal(pid, sig)
    if sig == signal.SIGKILL:
        process.wait_exit(pid, 10.0)
        process.running_pid(node)
    return pid


def bootstrap_servers(cluster: bool = False) -> str:
    return saved_layout(cluster).bootstrap
