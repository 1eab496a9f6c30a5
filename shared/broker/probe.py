"""Is a broker answering? Asked with a real Kafka metadata request, not just an open port."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.errors import KafkaError
from aiokafka.protocol.metadata import MetadataRequest


@dataclass(frozen=True)
class ClusterView:
    """What one broker's metadata response says about the cluster."""

    broker_ids: frozenset[int]
    controller_id: int | None
    cluster_id: str | None


async def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """Cheap pre-check so aiokafka does not log connection errors while a broker boots."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def describe(bootstrap: str, timeout: float = 5.0) -> ClusterView | None:
    """Metadata as seen by the one broker at ``bootstrap`` (host:port), or None if it does not answer.

    One raw connection and one MetadataRequest: the admin client would ask a random known node
    (maybe the one that is down) and the client's cluster object drops the cluster id, which is
    how a foreign broker squatting on our port is told apart from ours.
    """
    host, _, port = bootstrap.rpartition(":")
    if not await port_open(host, int(port), min(timeout, 1.0)):
        return None
    try:
        async with asyncio.timeout(timeout):
            conn = await create_conn(
                host, int(port), client_id="aidtrail-broker-probe", request_timeout_ms=int(timeout * 1000)
            )
            try:
                response = await conn.send(MetadataRequest([]))
            finally:
                conn.close()
    except (KafkaError, OSError, TimeoutError):
        return None
    return _view(response)


def _view(response: Any) -> ClusterView:
    controller = getattr(response, "controller_id", None)
    return ClusterView(
        broker_ids=frozenset(int(broker[0]) for broker in response.brokers),
        controller_id=None if controller is None or controller < 0 else int(controller),
        cluster_id=getattr(response, "cluster_id", None),
    )


async def wait_until_answering(bootstrap: str, timeout: float, interval: float = 0.25) -> bool:
    """Poll ``describe`` until the broker answers or ``timeout`` passes; for brokers we did not start."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while await describe(bootstrap) is None:
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(interval)
    return True
