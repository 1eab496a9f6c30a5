"""Status of the local Kafka nodes: live process and a real metadata answer."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from shared.broker import process
from shared.broker.config import Layout, NodeSpec, saved_layout
from shared.broker.paths import kafka_version
from shared.broker.probe import ClusterView, describe
from shared.broker.storage import stored_cluster_id

T = TypeVar("T")


@dataclass(frozen=True)
class NodeStatus:
    node_id: int
    pid: int | None
    bootstrap: str
    controller: str
    data_dir: Path
    answering: bool
    live_brokers: frozenset[int]

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
        expected = frozenset(node.node_id for node in self.nodes)
        return all(node.answering and expected <= node.live_brokers for node in self.nodes)


async def status_async(cluster: bool = False) -> BrokerStatus:
    """Status of the layout last started (single node unless ``cluster``)."""
    return await layout_status(saved_layout(cluster))


def status(cluster: bool = False) -> BrokerStatus:
    return run_sync(status_async(cluster))


async def layout_status(layout: Layout) -> BrokerStatus:
    pids = [process.running_pid(node) for node in layout.nodes]
    views = await asyncio.gather(
        *(_own_view(layout, node) if pid else _none() for node, pid in zip(layout.nodes, pids, strict=True))
    )
    nodes = tuple(
        NodeStatus(
            n.node_id,
            pid,
            n.bootstrap,
            n.controller_address,
            n.data_dir,
            answering=view is not None,
            live_brokers=frozenset() if view is None else view.broker_ids,
        )
        for n, pid, view in zip(layout.nodes, pids, views, strict=True)
    )
    return BrokerStatus(layout.name, layout.bootstrap, kafka_version(), nodes)


async def sees_all(layout: Layout, node: NodeSpec) -> bool:
    """Ready means answering *and* seeing every layout node as a live (unfenced) broker."""
    view = await _own_view(layout, node)
    return view is not None and frozenset(n.node_id for n in layout.nodes) <= view.broker_ids


async def _own_view(layout: Layout, node: NodeSpec) -> ClusterView | None:
    """None unless the answer comes from our cluster: another broker may hold the port."""
    view = await describe(node.bootstrap)
    expected = stored_cluster_id(layout)
    if view is None or (expected is not None and view.cluster_id != expected):
        return None
    return view


async def _none() -> ClusterView | None:
    return None


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Sync entry points for the CLI and fixtures.

    A private loop (not asyncio.run) leaves the thread's current loop alone, which pytest-asyncio's
    session loop relies on; inside a running loop the work moves to a helper thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_on_private_loop(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(_run_on_private_loop, coro).result()


def _run_on_private_loop(coro: Coroutine[Any, Any, T]) -> T:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
