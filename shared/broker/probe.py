"""Is a broker answering? Asked with a real Kafka metadata request, not just an open port."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError


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
    """Metadata from the first broker in ``bootstrap`` that answers, or None."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    if not await port_open(host, int(port), min(timeout, 1.0)):
        return None
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="aidtrail-broker-probe",
        request_timeout_ms=int(timeout * 1000),
    )
    try:
        info = await asyncio.wait_for(_describe(admin), timeout)
    except (KafkaError, OSError, TimeoutError):
        return None
    finally:
        with contextlib.suppress(KafkaError, OSError):
            await admin.close()
    return _view(info)


async def _describe(admin: Any) -> dict[str, Any]:
    await admin.start()
    info: dict[str, Any] = await admin.describe_cluster()
    return info


def _view(info: dict[str, Any]) -> ClusterView:
    brokers = info.get("brokers") or []
    controller = info.get("controller_id")
    return ClusterView(
        broker_ids=frozenset(int(b["node_id"]) for b in brokers),
        controller_id=None if controller is None or controller < 0 else int(controller),
        cluster_id=info.get("cluster_id"),
    )
