"""Node layouts (ports, directories) and the server.properties generated for them."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from shared.broker.errors import BrokerError
from shared.broker.paths import kafka_state_dir

HOST = "127.0.0.1"
SINGLE_CLIENT_PORT = 9092
SINGLE_CONTROLLER_PORT = 9093
CLUSTER_CLIENT_PORT = 19092
CLUSTER_CONTROLLER_PORT = 19192
DEFAULT_CLUSTER_SIZE = 3

_LAYOUT_FILE = "layout.json"


@dataclass(frozen=True)
class NodeSpec:
    """One combined broker+controller process and the files it owns."""

    node_id: int
    client_port: int
    controller_port: int
    data_dir: Path

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.client_port}"

    @property
    def controller_address(self) -> str:
        return f"{HOST}:{self.controller_port}"

    @property
    def properties_path(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "kafka.pid"

    @property
    def console_path(self) -> Path:
        """stdout/stderr of the JVM: catches crashes that happen before log4j is up."""
        return self.data_dir / "kafka.out"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def log_dir(self) -> Path:
        """Kafka's ``log.dirs``: topic partitions and the KRaft metadata log."""
        return self.data_dir / "data"

    @property
    def formatted(self) -> bool:
        return (self.log_dir / "meta.properties").is_file()


@dataclass(frozen=True)
class Layout:
    """A single node or an N-node cluster sharing one cluster id and one static voter set."""

    name: str
    root: Path
    nodes: tuple[NodeSpec, ...]

    @property
    def is_cluster(self) -> bool:
        return self.name == "cluster"

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def voters(self) -> str:
        return ",".join(f"{node.node_id}@{node.controller_address}" for node in self.nodes)

    @property
    def cluster_id_path(self) -> Path:
        return self.root / "cluster.id"

    @property
    def lock_path(self) -> Path:
        return self.root / ".lock"

    def node(self, node_id: int) -> NodeSpec:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        known = ", ".join(str(node.node_id) for node in self.nodes)
        raise BrokerError(f"no node {node_id} in the {self.name} layout (nodes: {known})")


def single_layout(client_port: int | None = None, controller_port: int | None = None) -> Layout:
    """Ports: argument, else AIDTRAIL_KAFKA_PORT / AIDTRAIL_KAFKA_CONTROLLER_PORT, else 9092/9093."""
    root = kafka_state_dir() / "single"
    client = _port(client_port, "AIDTRAIL_KAFKA_PORT", SINGLE_CLIENT_PORT)
    controller = _port(controller_port, "AIDTRAIL_KAFKA_CONTROLLER_PORT", SINGLE_CONTROLLER_PORT)
    return Layout("single", root, (NodeSpec(1, client, controller, root),))


def cluster_layout(
    size: int = DEFAULT_CLUSTER_SIZE,
    client_port: int | None = None,
    controller_port: int | None = None,
) -> Layout:
    """Node N listens on base+N-1; bases from arguments, AIDTRAIL_KAFKA_CLUSTER_[CONTROLLER_]PORT."""
    if size < 2:
        raise BrokerError(f"a cluster needs at least 2 nodes, got {size}")
    root = kafka_state_dir() / "cluster"
    client = _port(client_port, "AIDTRAIL_KAFKA_CLUSTER_PORT", CLUSTER_CLIENT_PORT)
    controller = _port(controller_port, "AIDTRAIL_KAFKA_CLUSTER_CONTROLLER_PORT", CLUSTER_CONTROLLER_PORT)
    nodes = tuple(NodeSpec(i, client + i - 1, controller + i - 1, root / f"node-{i}") for i in range(1, size + 1))
    return Layout("cluster", root, nodes)


def saved_layout(cluster: bool) -> Layout:
    """The layout the last start() used, so stop/status find nodes started on overridden ports."""
    default = cluster_layout() if cluster else single_layout()
    path = default.root / _LAYOUT_FILE
    if not path.is_file():
        return default
    raw = json.loads(path.read_text(encoding="utf-8"))
    nodes = tuple(
        NodeSpec(int(n["node_id"]), int(n["client_port"]), int(n["controller_port"]), Path(n["data_dir"]))
        for n in raw["nodes"]
    )
    return Layout(default.name, default.root, nodes)


def save_layout(layout: Layout) -> None:
    layout.root.mkdir(parents=True, exist_ok=True)
    nodes = [
        {
            "node_id": n.node_id,
            "client_port": n.client_port,
            "controller_port": n.controller_port,
            "data_dir": str(n.data_dir),
        }
        for n in layout.nodes
    ]
    (layout.root / _LAYOUT_FILE).write_text(json.dumps({"nodes": nodes}, indent=2) + "\n", encoding="utf-8")


def render_properties(layout: Layout, node: NodeSpec) -> str:
    """server.properties for one combined node; regenerated on every start so edits here take effect."""
    replicas = min(len(layout.nodes), 3)
    min_isr = 2 if replicas >= 3 else 1
    settings: dict[str, str | int] = {
        "node.id": node.node_id,
        "process.roles": "broker,controller",
        "controller.quorum.voters": layout.voters,
        "controller.listener.names": "CONTROLLER",
        "listeners": f"PLAINTEXT://{node.bootstrap},CONTROLLER://{node.controller_address}",
        "advertised.listeners": f"PLAINTEXT://{node.bootstrap},CONTROLLER://{node.controller_address}",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(node.log_dir),
        "num.partitions": 1,
        "auto.create.topics.enable": "false",
        "group.initial.rebalance.delay.ms": 0,
        "default.replication.factor": replicas,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": replicas,
        "offsets.topic.num.partitions": 10,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": 10,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min_isr,
        "num.network.threads": 2,
        "num.io.threads": 4,
        # A kill -9'd node is fenced, and may re-register after a restart, only once its old
        # session expires (default 9 s); 6 s keeps fault tests shorter and loopback needs no slack.
        "broker.heartbeat.interval.ms": 1000,
        "broker.session.timeout.ms": 6000,
    }
    header = f"# Generated by shared/broker for the {layout.name} layout; edits are overwritten.\n"
    return header + "".join(f"{key}={value}\n" for key, value in settings.items())


def _port(explicit: int | None, env_name: str, default: int) -> int:
    if explicit is not None:
        return explicit
    configured = os.environ.get(env_name)
    if configured:
        try:
            return int(configured)
        except ValueError as exc:
            raise BrokerError(f"{env_name}={configured!r} is not a port number") from exc
    return default
