"""Where the SASL/SCRAM-over-TLS broker keeps its files, its credentials and its server.properties.

Apart from `secure.py` (start, stop, status) so that each reads in one sitting.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from shared.broker.config import Layout, NodeSpec
from shared.broker.errors import BrokerError
from shared.broker.paths import kafka_state_dir
from shared.broker.secure_tls import TlsFiles

SECURE_CLIENT_PORT = 9094
SECURE_CONTROLLER_PORT = 9095
MECHANISM = "SCRAM-SHA-512"
ADMIN_USER = "aidtrail-admin"
SERVICE_USER = "aidtrail"
LISTENER = "SASL_SSL"
DEFAULT_START_TIMEOUT_S = 60.0
DEFAULT_STOP_TIMEOUT_S = 30.0

_PORT_ENV = "AIDTRAIL_KAFKA_SECURE_PORT"
_CONTROLLER_PORT_ENV = "AIDTRAIL_KAFKA_SECURE_CONTROLLER_PORT"
_STATE_FILE = "secure.json"
_LAYOUT_FILE = "layout.json"
_FORMAT_TIMEOUT_S = 120.0
_PROBE_TIMEOUT_S = 5.0
_POLL_S = 0.25


@dataclass(frozen=True)
class Credentials:
    """Generated once per data directory; SCRAM users are baked into the formatted storage."""

    store_password: str
    users: dict[str, str]

    @property
    def admin_password(self) -> str:
        return self.users[ADMIN_USER]

    @property
    def service_password(self) -> str:
        return self.users[SERVICE_USER]


@dataclass(frozen=True)
class SecureBroker:
    """Everything a client needs to reach the secure broker as the service user."""

    bootstrap: str
    ca_file: Path
    username: str
    password: str
    admin_username: str
    admin_password: str
    mechanism: str = MECHANISM
    security_protocol: str = LISTENER

    def env(self) -> dict[str, str]:
        """The AIDTRAIL_* variables a service process needs, nothing else."""
        return {
            "AIDTRAIL_KAFKA_BOOTSTRAP": self.bootstrap,
            "AIDTRAIL_KAFKA_SECURITY_PROTOCOL": self.security_protocol,
            "AIDTRAIL_KAFKA_SASL_MECHANISM": self.mechanism,
            "AIDTRAIL_KAFKA_SASL_USERNAME": self.username,
            "AIDTRAIL_KAFKA_SASL_PASSWORD": self.password,
            "AIDTRAIL_KAFKA_SSL_CAFILE": str(self.ca_file),
        }


@dataclass(frozen=True)
class SecureStartResult:
    broker: SecureBroker
    already_running: bool
    formatted: bool
    elapsed_s: float


@dataclass(frozen=True)
class SecureStatus:
    pid: int | None
    answering: bool
    bootstrap: str
    root: Path

    @property
    def running(self) -> bool:
        return self.pid is not None


# ---------------------------------------------------------------- layout and files


def secure_root() -> Path:
    return kafka_state_dir() / "secure"


def secure_layout(client_port: int | None = None, controller_port: int | None = None) -> Layout:
    """Ports: argument, else AIDTRAIL_KAFKA_SECURE_PORT / _CONTROLLER_PORT, else 9094/9095."""
    root = secure_root()
    client = _port(client_port, _PORT_ENV, SECURE_CLIENT_PORT)
    controller = _port(controller_port, _CONTROLLER_PORT_ENV, SECURE_CONTROLLER_PORT)
    return Layout("secure", root, (NodeSpec(1, client, controller, root),))


def saved_secure_layout() -> Layout:
    """The ports of the last start, so stop/status/env find a broker started on overridden ports."""
    default = secure_layout()
    path = default.root / _LAYOUT_FILE
    if not path.is_file():
        return default
    [node] = json.loads(path.read_text(encoding="utf-8"))["nodes"]
    return secure_layout(int(node["client_port"]), int(node["controller_port"]))


def tls_files(root: Path | None = None) -> TlsFiles:
    return TlsFiles((root or secure_root()) / "tls")


def load_credentials(root: Path | None = None) -> Credentials | None:
    path = (root or secure_root()) / _STATE_FILE
    if not path.is_file():
        return None
    raw = json.loads(path.read_text(encoding="utf-8"))
    users = {str(k): str(v) for k, v in raw["users"].items()}
    if set(users) != {ADMIN_USER, SERVICE_USER}:
        return None
    return Credentials(str(raw["store_password"]), users)


def broker_info(layout: Layout | None = None) -> SecureBroker:
    """Connection details from the files on disk; raises BrokerError before the first start."""
    layout = layout or saved_secure_layout()
    creds = load_credentials(layout.root)
    if creds is None:
        raise BrokerError(f"no secure broker state in {layout.root}; run `python -m shared.broker.secure start` first")
    return SecureBroker(
        bootstrap=layout.bootstrap,
        ca_file=tls_files(layout.root).ca_pem,
        username=SERVICE_USER,
        password=creds.service_password,
        admin_username=ADMIN_USER,
        admin_password=creds.admin_password,
    )


def _new_credentials(root: Path) -> Credentials:
    # Hex only: the values go into a JAAS string and the --add-scram argument unquoted.
    creds = Credentials(secrets.token_hex(16), {ADMIN_USER: secrets.token_hex(16), SERVICE_USER: secrets.token_hex(16)})
    root.mkdir(parents=True, exist_ok=True)
    _write_private(
        root / _STATE_FILE, json.dumps({"store_password": creds.store_password, "users": creds.users}, indent=2) + "\n"
    )
    return creds


def _write_private(path: Path, text: str) -> None:
    """Passwords on disk: owner-only from the first byte, not chmod'ed after the fact."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def render_secure_properties(layout: Layout, node: NodeSpec, creds: Credentials, tls: TlsFiles) -> str:
    """server.properties of the secure node; regenerated on every start like the plain broker's."""
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{ADMIN_USER}" password="{creds.admin_password}";'
    )
    settings: dict[str, str | int] = {
        "node.id": node.node_id,
        "process.roles": "broker,controller",
        "controller.quorum.voters": layout.voters,
        "controller.listener.names": "CONTROLLER",
        "listeners": f"{LISTENER}://{node.bootstrap},CONTROLLER://{node.controller_address}",
        "advertised.listeners": f"{LISTENER}://{node.bootstrap},CONTROLLER://{node.controller_address}",
        "listener.security.protocol.map": f"{LISTENER}:SASL_SSL,CONTROLLER:PLAINTEXT",
        # The broker authenticates to itself like any client would, as the admin user.
        "inter.broker.listener.name": LISTENER,
        "sasl.enabled.mechanisms": MECHANISM,
        "sasl.mechanism.inter.broker.protocol": MECHANISM,
        f"listener.name.{LISTENER.lower()}.{MECHANISM.lower()}.sasl.jaas.config": jaas,
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(tls.keystore),
        "ssl.keystore.password": creds.store_password,
        "ssl.key.password": creds.store_password,
        "ssl.truststore.type": "PKCS12",
        "ssl.truststore.location": str(tls.truststore),
        "ssl.truststore.password": creds.store_password,
        "ssl.client.auth": "none",
        "ssl.endpoint.identification.algorithm": "https",
        "log.dirs": str(node.log_dir),
        "num.partitions": 1,
        "auto.create.topics.enable": "false",
        "group.initial.rebalance.delay.ms": 0,
        "default.replication.factor": 1,
        "min.insync.replicas": 1,
        "offsets.topic.replication.factor": 1,
        "offsets.topic.num.partitions": 10,
        "transaction.state.log.replication.factor": 1,
        "transaction.state.log.min.isr": 1,
        "transaction.state.log.num.partitions": 10,
        "share.coordinator.state.topic.replication.factor": 1,
        "share.coordinator.state.topic.min.isr": 1,
        "num.network.threads": 2,
        "num.io.threads": 4,
    }
    header = "# Generated by shared/broker/secure.py; edits are overwritten. Holds passwords: mode 0600.\n"
    return header + "".join(f"{key}={value}\n" for key, value in settings.items())


def _port(explicit: int | None, env_name: str, default: int) -> int:
    if explicit is not None:
        return explicit
    configured = os.environ.get(env_name)
    if not configured:
        return default
    try:
        return int(configured)
    except ValueError as exc:
        raise BrokerError(f"{env_name}={configured!r} is not a port number") from exc
