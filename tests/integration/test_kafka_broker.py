"""The project's real Kafka broker: lifecycle, a produce/consume round trip and a 3-node fault test.

Needs Java and Maven; the broker is started by ``tests.fixtures.kafka`` (never skipped).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from shared.broker import (
    BrokerStartError,
    BrokerToolError,
    fetch_jars,
    jars_are_current,
    kafka_version,
    kill_node,
    require_tool,
    start_async,
    start_node_async,
    status_async,
    stop,
)
from tests.fixtures.kafka import BOOTSTRAP_ENV, unique_topic

own_broker_only = pytest.mark.skipif(
    bool(os.environ.get(BOOTSTRAP_ENV)), reason=f"{BOOTSTRAP_ENV} points at a broker this project did not start"
)


@pytest.fixture
async def admin(kafka_bootstrap: str) -> AsyncIterator[Any]:
    client = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await client.start()
    yield client
    await client.close()


async def _create_topic(admin: Any, name: str, partitions: int, replicas: int, **configs: str) -> None:
    response = await admin.create_topics([NewTopic(name, partitions, replicas, topic_configs=configs)])
    errors = [(topic, code) for topic, code, *_ in response.topic_errors if code != 0]
    assert not errors, f"create_topics failed: {errors}"


async def _consume(bootstrap: str, topic: str, expected: int, group: str | None, timeout: float) -> list[bytes]:
    """Read until ``expected`` records arrived or the deadline passed."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + timeout
        while len(values) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            values += [record.value for records in batches.values() for record in records]
        if group is not None:
            await consumer.commit()
    finally:
        await consumer.stop()
    return values


async def _produce(producer: AIOKafkaProducer, topic: str, values: Iterable[bytes]) -> None:
    futures = [await producer.send(topic, value, key=value) for value in values]
    await asyncio.gather(*futures)


# ------------------------------------------------------------------ single node


@pytest.mark.kafka
@own_broker_only
async def test_start_twice_is_idempotent(kafka_bootstrap: str) -> None:
    first = await start_async()
    second = await start_async()

    assert first.already_running and second.already_running
    assert second.started == () and second.formatted == ()
    assert [n.pid for n in first.status.nodes] == [n.pid for n in second.status.nodes]
    assert second.status.nodes[0].pid is not None
    assert second.bootstrap == kafka_bootstrap


@pytest.mark.kafka
@own_broker_only
async def test_status_reports_running_and_answering(kafka_bootstrap: str) -> None:
    current = await status_async()

    assert current.running and current.answering
    assert current.layout == "single"
    assert current.bootstrap == kafka_bootstrap
    assert current.kafka_version == kafka_version()
    (node,) = current.nodes
    assert node.live_brokers == frozenset({1})
    assert (node.data_dir / "data" / "meta.properties").is_file()


@pytest.mark.kafka
async def test_produce_consume_round_trip(kafka_bootstrap: str, admin: Any) -> None:
    topic = unique_topic("broker-roundtrip")
    await _create_topic(admin, topic, partitions=3, replicas=1, **{"retention.ms": "-1"})
    try:
        before_ms = int(time.time() * 1000)
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True, acks="all")
        await producer.start()
        try:
            await _produce(producer, topic, (f"event-{i}".encode() for i in range(20)))
        finally:
            await producer.stop()

        values = await _consume(kafka_bootstrap, topic, 20, group=unique_topic("group"), timeout=30)
        assert sorted(values) == sorted(f"event-{i}".encode() for i in range(20))

        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
        await consumer.start()
        try:
            partitions = [TopicPartition(topic, p) for p in range(3)]
            found = await consumer.offsets_for_times(dict.fromkeys(partitions, before_ms))
            assert all(found[tp] is not None and found[tp].offset == 0 for tp in partitions)
        finally:
            await consumer.stop()

        configs = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": None})]
        )
        assert _config_value(configs, "retention.ms") == "-1"
    finally:
        await admin.delete_topics([topic])


@pytest.mark.kafka
async def test_topics_are_not_auto_created(kafka_bootstrap: str, admin: Any) -> None:
    broker_configs = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.BROKER, "1", {"auto.create.topics.enable": None})]
    )
    assert _config_value(broker_configs, "auto.create.topics.enable") == "false"

    missing = unique_topic("never-created")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, request_timeout_ms=1500)
    await producer.start()
    try:
        with pytest.raises(KafkaError):
            await producer.send_and_wait(missing, b"x")
    finally:
        await producer.stop()
    assert missing not in await admin.list_topics()


def _config_value(responses: list[Any], name: str) -> str | None:
    for response in responses:
        for resource in response.to_object()["resources"]:
            for entry in resource["config_entries"]:
                if entry["config_names"] == name:
                    return str(entry["config_value"])
    return None


# ------------------------------------------------------------------ tooling errors (no broker needed)


def test_missing_java_or_maven_gives_actionable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    had_jars = jars_are_current()

    with pytest.raises(BrokerToolError, match=r"`java` was not found on PATH.*apt-get install openjdk"):
        require_tool("java")
    with pytest.raises(BrokerToolError, match=r"`mvn` was not found on PATH.*apt-get install maven"):
        fetch_jars(force=True)
    assert jars_are_current() == had_jars  # the tool check comes before the lib dir is wiped


# ------------------------------------------------------------------ 3-node cluster


@pytest.mark.kafka
@pytest.mark.kafka_cluster
async def test_cluster_of_three_keeps_accepting_acks_all_writes_when_one_node_is_killed() -> None:
    started = await start_async(cluster_size=3, timeout=90)
    bootstrap = started.bootstrap
    try:
        assert started.status.answering and len(started.status.nodes) == 3
        topic = unique_topic("cluster-fault")
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await _create_topic(admin, topic, partitions=3, replicas=3)
            victim = await _leader_of(admin, topic, partition=0)
            producer = AIOKafkaProducer(
                bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", request_timeout_ms=30000
            )
            await producer.start()
            try:
                await _produce(producer, topic, (f"before-{i}".encode() for i in range(30)))
                assert kill_node(victim) is not None
                await _produce(producer, topic, (f"after-{i}".encode() for i in range(30)))
            finally:
                await producer.stop()

            values = await _consume(bootstrap, topic, 60, group=None, timeout=30)
            assert len(values) == 60 and set(values) == {
                *(f"before-{i}".encode() for i in range(30)),
                *(f"after-{i}".encode() for i in range(30)),
            }

            restarted = await start_node_async(victim, timeout=60)
            assert restarted.started == (victim,) and restarted.status.answering
            await _wait_for_full_isr(admin, topic, replicas=3, timeout=30)
        finally:
            await admin.close()
    finally:
        result = await asyncio.to_thread(stop, True)
        assert set(result.stopped) == {1, 2, 3}


async def _leader_of(admin: Any, topic: str, partition: int, timeout: float = 30) -> int:
    """A just-created topic's partitions reach every node's metadata a moment later, so ask until they do."""
    deadline = time.monotonic() + timeout
    while True:
        (description,) = await admin.describe_topics([topic])
        leaders = {p["partition"]: p["leader"] for p in description["partitions"]}
        if leaders.get(partition) in (1, 2, 3):
            return int(leaders[partition])
        assert time.monotonic() < deadline, f"no leader for {topic}[{partition}] after {timeout}s: {description}"
        await asyncio.sleep(0.2)


async def _wait_for_full_isr(admin: Any, topic: str, replicas: int, timeout: float) -> None:
    """The restarted node catches up and rejoins every ISR."""
    deadline = time.monotonic() + timeout
    while True:
        (description,) = await admin.describe_topics([topic])
        isr_sizes = [len(p["isr"]) for p in description["partitions"]]
        if all(size == replicas for size in isr_sizes):
            return
        assert time.monotonic() < deadline, f"ISR did not recover: {description}"
        await asyncio.sleep(0.25)


# ------------------------------------------------------------------ startup failure


@pytest.mark.kafka
async def test_startup_failure_reports_the_cause_from_the_broker_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node whose client port is taken dies at startup; the error carries Kafka's own reason."""
    monkeypatch.setenv("AIDTRAIL_HOME", str(tmp_path))
    with _listening_socket() as taken, _listening_socket() as spare:
        controller_port = spare.getsockname()[1]
        spare.close()  # free again: only the client port must be in use
        with pytest.raises(BrokerStartError, match=r"exited during startup(.|\n)*Address already in use"):
            await start_async(client_port=taken.getsockname()[1], controller_port=controller_port, timeout=60)
    assert not (await status_async()).running


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock
