"""A real Apache Kafka broker (KRaft) for development and tests, fetched from Maven Central.

See deploy/kafka/README.md for what is pinned, the ports and where data lives.
"""

from shared.broker.config import (
    CLUSTER_CLIENT_PORT,
    CLUSTER_CONTROLLER_PORT,
    DEFAULT_CLUSTER_SIZE,
    SINGLE_CLIENT_PORT,
    SINGLE_CONTROLLER_PORT,
)
from shared.broker.errors import BrokerError, BrokerStartError, BrokerToolError
from shared.broker.jars import fetch_jars, find_tool, jars_are_current, require_tool
from shared.broker.local_kafka import (
    StartResult,
    StopResult,
    bootstrap_servers,
    kill_broker,
    kill_node,
    start,
    start_async,
    start_node,
    start_node_async,
    stop,
    stop_node,
)
from shared.broker.paths import aidtrail_home, kafka_version
from shared.broker.status import BrokerStatus, NodeStatus, status, status_async

__all__ = [
    "CLUSTER_CLIENT_PORT",
    "CLUSTER_CONTROLLER_PORT",
    "DEFAULT_CLUSTER_SIZE",
    "SINGLE_CLIENT_PORT",
    "SINGLE_CONTROLLER_PORT",
    "BrokerError",
    "BrokerStartError",
    "BrokerStatus",
    "BrokerToolError",
    "NodeStatus",
    "StartResult",
    "StopResult",
    "aidtrail_home",
    "bootstrap_servers",
    "fetch_jars",
    "find_tool",
    "jars_are_current",
    "kafka_version",
    "kill_broker",
    "kill_node",
    "require_tool",
    "start",
    "start_async",
    "start_node",
    "start_node_async",
    "status",
    "status_async",
    "stop",
    "stop_node",
]
