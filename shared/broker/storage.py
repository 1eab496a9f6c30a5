"""KRaft storage: the cluster id and the one-time ``StorageTool format`` of each node."""

from __future__ import annotations

import base64
import subprocess
import uuid

from shared.broker import process
from shared.broker.config import Layout, NodeSpec
from shared.broker.errors import BrokerStartError

_FORMAT_TIMEOUT_S = 120.0


def cluster_id(layout: Layout) -> str:
    """One id per layout, kept on disk; recovered from formatted storage if the id file was lost."""
    stored = stored_cluster_id(layout)
    if stored:
        return stored
    found = next((cid for node in layout.nodes if (cid := _formatted_cluster_id(node))), None)
    chosen = found or random_kafka_uuid()
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.cluster_id_path.write_text(chosen + "\n", encoding="utf-8")
    return chosen


def stored_cluster_id(layout: Layout) -> str | None:
    path = layout.cluster_id_path
    return path.read_text(encoding="utf-8").strip() if path.is_file() else None


def random_kafka_uuid() -> str:
    """Kafka's Uuid text form (url-safe base64, no padding); avoids a JVM start just for an id."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka avoids these too: they read as CLI flags
            return text


def format_storage(java: str, node: NodeSpec, cluster: str) -> None:
    """Static voters are in server.properties, so no ``--standalone``/``--initial-controllers``."""
    node.logs_dir.mkdir(parents=True, exist_ok=True)
    command = process.java_command(
        java, node, "kafka.tools.StorageTool", "format", "-t", cluster, "-c", str(node.properties_path)
    )
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=_FORMAT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BrokerStartError(f"formatting storage of node {node.node_id} timed out") from exc
    if done.returncode != 0:
        output = "\n".join((done.stdout + done.stderr).strip().splitlines()[-30:])
        raise BrokerStartError(
            f"formatting storage of node {node.node_id} in {node.log_dir} failed (exit {done.returncode}):\n{output}"
        )


def _formatted_cluster_id(node: NodeSpec) -> str | None:
    meta = node.log_dir / "meta.properties"
    if not meta.is_file():
        return None
    for line in meta.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "cluster.id":
            return value.strip()
    return None
