"""Where the local Kafka tooling keeps its jars, configs and data."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from shared.broker.errors import BrokerToolError

_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def repo_root() -> Path:
    """The checkout root, found from this file so commands work from any working directory."""
    return Path(__file__).resolve().parents[2]


def deploy_dir() -> Path:
    """deploy/kafka holds the pom that pins Kafka and the log4j2 config."""
    return repo_root() / "deploy" / "kafka"


def pom_path() -> Path:
    return deploy_dir() / "pom.xml"


def lib_dir() -> Path:
    """Jars land under target/ so they stay out of git (target/ is ignored)."""
    return deploy_dir() / "target" / "lib"


def log4j_config() -> Path:
    return deploy_dir() / "log4j2.properties"


def aidtrail_home() -> Path:
    """State root; ``AIDTRAIL_HOME`` lets CI or a developer move it off the checkout."""
    configured = os.environ.get("AIDTRAIL_HOME")
    if configured:
        return Path(configured).expanduser().resolve()
    return repo_root() / ".aidtrail"


def kafka_state_dir() -> Path:
    return aidtrail_home() / "kafka"


def kafka_version() -> str:
    """The Kafka version pinned in deploy/kafka/pom.xml, the single place it is set."""
    return _pom_property(pom_path(), "kafka.version")


def _pom_property(path: Path, name: str) -> str:
    if not path.is_file():
        raise BrokerToolError(f"{path} is missing; the local Kafka tooling needs a source checkout of aidtrail")
    root = ET.parse(path).getroot()
    element = root.find(f"m:properties/m:{name}", _POM_NS)
    if element is None or not (element.text or "").strip():
        raise BrokerToolError(f"{path} does not define the <{name}> property")
    return (element.text or "").strip()
