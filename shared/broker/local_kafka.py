"""Start, stop and inspect a real Apache Kafka broker (KRaft) on loopback.

Two layouts, which can run side by side:

* single node: node 1 on 127.0.0.1:9092 (controller 9093), data in $AIDTRAIL_HOME/kafka/single;
* cluster: nodes 1..N on 19092.. (controllers 19192..), data in $AIDTRAIL_HOME/kafka/cluster/node-N.

Every node is a combined broker+controller with a static voter set. Brokers are detached
processes, so they outlive the command or test session that started them.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import signal
import subprocess
import time
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

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
from shared.broker.paths import kafka_version
from shared.broker.probe import describe

DEFAULT_START_TIMEOUT_S = 60.0
DEFAULT_STOP_TIMEOUT_S = 30.0
_FORMAT_TIMEOUT_S = 120.0
_POLL_S = 0.25

T = TypeVar("T")


@dataclass(frozen=True)
class NodeStatus:
    node_id: int
    pid: int | None
    bootstrap: str
    controller: str
    data_dir: Path
    answering: bool

    @property
    def running(self) -> bool:
        return self.pid is not None


@dataclass(frozen=True)
class BrokerStatus:
    layout: str
    bootstrap: str
    kafka_version: str
    nodes: tuple[NodeStatus, ...]

    @property
    def running(self) -> bool:
        """All nodes have a live process."""
        return all(node.running for node in self.nodes)

    @property
    def answering(self) -> bool:
        """All nodes answer metadata requests and see each other as live brokers."""
        return all(node.answering for node in self.nodes)


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


# ---------------------------------------------------------------- status


async def status_async(cluster: bool = False) -> BrokerStatus:
    """Status of the layout last started (single node unless ``cluster``)."""
    return await _status(saved_layout(cluster))


def status(cluster: bool = False) -> BrokerStatus:
    return _run_sync(status_async(cluster))


async def _status(layout: Layout) -> BrokerStatus:
    expected = frozenset(node.node_id for node in layout.nodes)
    pids = [process.running_pid(node) for node in layout.nodes]
    views = await asyncio.gather(
        *(_answering(node, expected) if pid else _false() for node, pid in zip(layout.nodes, pids, strict=True))
    )
    nodes = tuple(
        NodeStatus(n.node_id, pid, n.bootstrap, n.controller_address, n.data_dir, ok)
        for n, pid, ok in zip(layout.nodes, pids, views, strict=True)
    )
    return BrokerStatus(layout.name, layout.bootstrap, kafka_version(), nodes)


async def _answering(node: NodeSpec, expected: frozenset[int]) -> bool:
    view = await describe(node.bootstrap)
    return view is not None and expected <= view.broker_ids


async def _false() -> bool:
    return False


# ---------------------------------------------------------------- start


async def start_async(
    cluster_size: int = 1,
    timeout: float = DEFAULT_START_TIMEOUT_S,
    client_port: int | None = None,
    controller_port: int | None = None,
) -> StartResult:
    """Start the single node (``cluster_size=1``) or an N-node cluster; a no-op if it already answers.

    Ports are base ports (cluster node N uses base+N-1). Raises BrokerToolError when java/mvn
    are missing and BrokerStartError (with the log tail) when a node dies or the deadline passes.
    """
    began = time.monotonic()
    layout = _layout_for(cluster_size, client_port, controller_port)
    current = await _status(layout)
    if current.running and current.answering:
        return StartResult(current, True, (), (), time.monotonic() - began)
    started, formatted = _launch(layout, [node.node_id for node in layout.nodes], timeout)
    await _wait_ready(layout, layout.nodes, began + timeout)
    final = await _status(layout)
    return StartResult(final, not started, started, formatted, time.monotonic() - began)


def start(
    cluster_size: int = 1,
    timeout: float = DEFAULT_START_TIMEOUT_S,
    client_port: int | None = None,
    controller_port: int | None = None,
) -> StartResult:
    return _run_sync(start_async(cluster_size, timeout, client_port, controller_port))


async def start_node_async(node_id: int, timeout: float = DEFAULT_START_TIMEOUT_S) -> StartResult:
    """(Re)start one cluster node, e.g. after kill_node(); waits until the cluster sees it again."""
    began = time.monotonic()
    layout = saved_layout(cluster=True)
    node = layout.node(node_id)
    started, formatted = _launch(layout, [node_id], timeout)
    await _wait_ready(layout, (node,), began + timeout)
    final = await _status(layout)
    return StartResult(final, not started, started, formatted, time.monotonic() - began)


def start_node(node_id: int, timeout: float = DEFAULT_START_TIMEOUT_S) -> StartResult:
    return _run_sync(start_node_async(node_id, timeout))


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


def _launch(layout: Layout, node_ids: Sequence[int], timeout: float) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Under the layout lock: write configs, format new storage, spawn nodes that are not running."""
    java = require_tool("java")
    fetch_jars()
    started: list[int] = []
    formatted: list[int] = []
    with process.locked(layout.lock_path):
        save_layout(layout)
        cluster_id = _cluster_id(layout)
        for node_id in node_ids:
            node = layout.node(node_id)
            if process.running_pid(node) is not None:
                continue
            node.data_dir.mkdir(parents=True, exist_ok=True)
            node.properties_path.write_text(render_properties(layout, node), encoding="utf-8")
            if not node.formatted:
                _format(java, node, cluster_id, timeout)
                formatted.append(node_id)
            process.spawn_broker(java, node)
            started.append(node_id)
    return tuple(started), tuple(formatted)


def _cluster_id(layout: Layout) -> str:
    """One id per layout, kept on disk; recovered from formatted storage if the id file was lost."""
    path = layout.cluster_id_path
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    cluster_id = next((cid for n in layout.nodes if (cid := _formatted_cluster_id(n))), None)
    cluster_id = cluster_id or _random_kafka_uuid()
    layout.root.mkdir(parents=True, exist_ok=True)
    path.write_text(cluster_id + "\n", encoding="utf-8")
    return cluster_id


def _formatted_cluster_id(node: NodeSpec) -> str | None:
    meta = node.log_dir / "meta.properties"
    if not meta.is_file():
        return None
    for line in meta.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "cluster.id":
            return value.strip()
    return None


def _random_kafka_uuid() -> str:
    """Kafka's Uuid text form (url-safe base64, no padding); avoids a JVM start just for an id."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka avoids these too: they read as CLI flags
            return text


def _format(java: str, node: NodeSpec, cluster_id: str, timeout: float) -> None:
    node.logs_dir.mkdir(parents=True, exist_ok=True)
    command = process.java_command(
        java, node, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(node.properties_path)
    )
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=max(timeout, _FORMAT_TIMEOUT_S), check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BrokerStartError(f"formatting storage of node {node.node_id} timed out") from exc
    if done.returncode != 0:
        output = "\n".join((done.stdout + done.stderr).strip().splitlines()[-30:])
        raise BrokerStartError(
            f"formatting storage of node {node.node_id} in {node.log_dir} failed (exit {done.returncode}):\n"
            f"{output}"
        )


async def _wait_ready(layout: Layout, nodes: Sequence[NodeSpec], deadline: float) -> None:
    """Poll until each node answers and sees every layout node as a live broker."""
    expected = frozenset(node.node_id for node in layout.nodes)
    while True:
        for node in nodes:
            _raise_if_dead(node)
        answers = await asyncio.gather(*(_answering(node, expected) for node in nodes))
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




# ---------------------------------------------------------------- sync bridge


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Sync entry points for the CLI; inside a running loop (async tests) run on a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
