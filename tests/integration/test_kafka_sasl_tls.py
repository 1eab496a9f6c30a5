"""SASL/SCRAM-SHA-512 over TLS through configuration alone, against a real broker that accepts nothing else.

The broker is the project's second local node (``shared.broker.secure``: SASL_SSL on 127.0.0.1:9094, a throwaway
CA, SCRAM users created at format time). Every client below is built the way the services build theirs, from a
``Settings`` via ``connection_options``, so a pass here means a service only needs the AIDTRAIL_KAFKA_* variables.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed
from aiokafka.protocol.metadata import MetadataRequest

from shared.broker import BrokerError, secure
from shared.events.envelope import Envelope, encode_data, from_record, to_headers
from shared.messaging.kafka_config import connection_options
from shared.messaging.relay import make_producer
from shared.messaging.topics import ensure_topics
from shared.settings import Settings
from tests.fixtures.databases import sqlite_url
from tests.harness import new_topic_prefix, running_service, wait_until

pytestmark = pytest.mark.kafka

# TLS set-up makes this broker's start CPU-bound (~10-25 s idle); on a 2-core box shared with other test runs it
# has taken over 60 s, so the deadline is generous. It is still a deadline: a broker that never answers fails.
START_DEADLINE_S = 120.0
REFUSAL_DEADLINE_S = 20.0
READ_DEADLINE_S = 30.0


@pytest.fixture(scope="module")
def secure_broker() -> Iterator[secure.SecureBroker]:
    """Started for this module, stopped at its end; a broker that cannot start fails the tests, never skips them."""
    try:
        result = secure.start(timeout=START_DEADLINE_S)
    except BrokerError as exc:
        pytest.fail(f"the SASL_SSL Kafka broker could not be started:\n{exc}", pytrace=False)
    yield result.broker
    secure.stop()


def secured(broker: secure.SecureBroker, **overrides: Any) -> Settings:
    """Exactly what a service would read from AIDTRAIL_KAFKA_* (see deploy/kafka/secure/README.md)."""
    values: dict[str, Any] = {
        "kafka_bootstrap": broker.bootstrap,
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": broker.username,
        "kafka_sasl_password": broker.password,
        "kafka_ssl_cafile": str(broker.ca_file),
        "topic_prefix": new_topic_prefix(),
        "topic_partitions": 1,
    }
    return Settings(**{**values, **overrides})


@pytest.fixture
def settings(secure_broker: secure.SecureBroker) -> Settings:
    return secured(secure_broker)


async def open_connection(settings: Settings) -> Any:
    """One raw connection with the options the services use: TLS handshake, SASL exchange, then a metadata request."""
    options = connection_options(settings)
    host, _, port = options.pop("bootstrap_servers").rpartition(":")
    conn = await create_conn(host, int(port), request_timeout_ms=10_000, **options)
    try:
        return await conn.send(MetadataRequest([]))
    finally:
        conn.close()


async def topic_names(settings: Settings) -> set[str]:
    admin = AIOKafkaAdminClient(**connection_options(settings), request_timeout_ms=15_000)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def read_envelopes(settings: Settings, topic: str, expected: int) -> list[Envelope]:
    consumer = AIOKafkaConsumer(
        topic,
        **connection_options(settings),
        group_id=f"{settings.topic_prefix}.reader",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[Envelope] = []
    try:
        async with asyncio.timeout(READ_DEADLINE_S):
            while len(found) < expected:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    found.extend(from_record(r.headers, r.value) for r in records)
    finally:
        await consumer.stop()
    return found


# --- (1) the project's topic setup ----------------------------------------------------------------------------


async def test_ensure_topics_creates_the_project_topics_over_sasl_ssl(settings: Settings) -> None:
    wanted = {settings.batch_topic, settings.reference_topic, settings.dead_letter_topic}
    assert set(await ensure_topics(settings)) == wanted
    assert wanted <= await topic_names(settings)
    assert await ensure_topics(settings) == [], "a second call finds them all and creates nothing"


# --- (2) the project's producer and a consumer built from the same settings ------------------------------------


async def test_project_producer_publishes_and_a_configured_consumer_reads_it_back(settings: Settings) -> None:
    await ensure_topics(settings)
    sent = Envelope(
        type="org.aidtrail.test.secured.v1",
        source="pledge",
        subject="sasl-tls-1",
        data={"over": "SASL_SSL", "mechanism": "SCRAM-SHA-512"},
        actor="tester",
        correlation_id="sasl-tls",
    )
    producer = make_producer(settings)
    await producer.start()
    try:
        metadata = await producer.send_and_wait(
            settings.batch_topic, encode_data(sent), key=sent.subject.encode(), headers=to_headers(sent)
        )
    finally:
        await producer.stop()
    assert metadata.offset == 0
    [received] = await read_envelopes(settings, settings.batch_topic, 1)
    assert (received.id, received.type, received.subject, received.data) == (
        sent.id,
        sent.type,
        sent.subject,
        sent.data,
    )


# --- (3) wrong credentials are refused ----------------------------------------------------------------------


async def test_a_wrong_password_is_refused_with_an_authentication_error(
    secure_broker: secure.SecureBroker, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = secured(secure_broker, kafka_sasl_password=secure_broker.password + "-wrong")
    async with asyncio.timeout(REFUSAL_DEADLINE_S):
        with pytest.raises(SaslAuthenticationFailed, match="invalid credentials with SASL mechanism SCRAM-SHA-512"):
            await open_connection(wrong)
        # The project's producer does not start either; aiokafka reports the broker's refusal as the reason.
        producer = make_producer(wrong)
        with caplog.at_level(logging.ERROR, logger="aiokafka"), pytest.raises(KafkaConnectionError):
            await producer.start()
        await producer.stop()
    assert "SaslAuthenticationFailed" in caplog.text
    unknown = secured(secure_broker, kafka_sasl_username="nobody", kafka_sasl_password=secure_broker.password)
    async with asyncio.timeout(REFUSAL_DEADLINE_S):
        with pytest.raises(SaslAuthenticationFailed):
            await open_connection(unknown)


# --- (4) nothing but SASL_SSL gets in, and TLS really verifies the broker ------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"kafka_security_protocol": "PLAINTEXT", "kafka_sasl_mechanism": None}, id="plaintext"),
        pytest.param({"kafka_security_protocol": "SASL_PLAINTEXT"}, id="sasl-without-tls"),
        pytest.param({"kafka_security_protocol": "SSL", "kafka_sasl_mechanism": None}, id="tls-without-sasl"),
    ],
)
async def test_a_client_without_sasl_ssl_cannot_talk_to_the_port(
    secure_broker: secure.SecureBroker, overrides: dict[str, Any]
) -> None:
    other = secured(secure_broker, **overrides)
    async with asyncio.timeout(REFUSAL_DEADLINE_S):
        with pytest.raises(KafkaConnectionError, match="closed"):
            await open_connection(other)
        producer = make_producer(other)
        with pytest.raises(KafkaConnectionError):
            await producer.start()
        await producer.stop()


async def test_a_broker_certificate_from_an_untrusted_ca_is_refused(secure_broker: secure.SecureBroker) -> None:
    """Without the CA file the system trust store applies, and it does not know the throwaway CA."""
    untrusted = secured(secure_broker, kafka_ssl_cafile=None)
    async with asyncio.timeout(REFUSAL_DEADLINE_S):
        with pytest.raises(ssl.SSLCertVerificationError):
            await open_connection(untrusted)


async def test_the_certificate_matches_both_loopback_names(secure_broker: secure.SecureBroker) -> None:
    """Hostname checking stays on: the SANs cover 127.0.0.1 and localhost, and nothing else."""
    port = secure_broker.bootstrap.rpartition(":")[2]
    for host in ("127.0.0.1", "localhost"):
        response = await open_connection(secured(secure_broker, kafka_bootstrap=f"{host}:{port}"))
        assert [int(b[0]) for b in response.brokers] == [1]
    context = ssl.create_default_context(cafile=str(secure_broker.ca_file))
    async with asyncio.timeout(REFUSAL_DEADLINE_S):
        with pytest.raises(ssl.SSLCertVerificationError, match=r"Hostname mismatch|doesn't match"):
            await asyncio.open_connection("127.0.0.1", int(port), ssl=context, server_hostname="kafka.example.org")


# --- (5) a whole service, configured and nothing else -----------------------------------------------------------


async def test_the_pledge_service_runs_on_the_secured_broker_by_configuration_alone(
    secure_broker: secure.SecureBroker, tmp_path: Path
) -> None:
    settings = secured(
        secure_broker,
        service="pledge",
        database_url=sqlite_url(tmp_path, "pledge.db"),
        relay_poll_seconds=0.2,
        topic_partitions=2,
    )
    async with running_service("pledge", settings) as pledge:
        headers = pledge.auth()
        donor = await pledge.http.post("/donors", json={"donor_id": "xiaomi", "name": "Xiaomi Group"}, headers=headers)
        assert donor.status_code == 201, donor.text
        line = {"item": "n95-mask", "quantity": 1000, "unit": "piece", "standard": "N95", "warehouse_id": "wh-wuhan-1"}
        created: httpx.Response = await pledge.http.post(
            "/pledges", json={"pledge_id": "xiaomi-2020-01", "donor_id": "xiaomi", "lines": [line]}, headers=headers
        )
        assert created.status_code == 201, created.text
        [batch_id] = created.json()["batch_ids"]

        async def drained() -> bool:
            relay = pledge.runtime.relay
            return relay is not None and relay.published > 0 and await relay.backlog() == 0

        await wait_until(drained, what="the pledge service's outbox to be published over SASL_SSL")
    [pledged] = await read_envelopes(settings, settings.batch_topic, 1)
    assert pledged.subject == batch_id
    assert pledged.type == "org.aidtrail.batch.pledged.v1"
