"""A second local Kafka broker that speaks only SASL/SCRAM-SHA-512 over TLS.

Why a second broker: the services must reach a secured Kafka through configuration alone
(AIDTRAIL_KAFKA_SECURITY_PROTOCOL and friends, see ``shared.messaging.kafka_config``), and the
only honest proof is a real broker that refuses anything else. The everyday broker on 9092
stays PLAINTEXT and untouched; this one runs beside it:

* client listener ``SASL_SSL://127.0.0.1:9094`` (the only way in for clients),
* controller listener ``CONTROLLER://127.0.0.1:9095``, PLAINTEXT: loopback only and used by
  the node to talk to its own controller, never by clients,
* data, certificates and generated passwords in ``$AIDTRAIL_HOME/kafka/secure/``.

Two SCRAM users are created at format time (``StorageTool format --add-scram``), so the very
first start already authenticates: ``aidtrail-admin`` (the broker's own inter-broker login,
also used by the readiness probe) and ``aidtrail`` (what a service uses). Passwords are random,
made once and kept in ``secure.json`` (mode 0600) next to the data, because SCRAM credentials
live in the formatted metadata log and must match it on every later start.

Run it with ``python -m shared.broker.secure start|status|env|stop``; deploy/kafka/secure/README.md
has the details. Jar fetching, process handling and the storage cluster id are the ones of the
plain broker (``shared.broker.jars``/``process``/``storage``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import ssl
import subprocess
import sys
import time
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.errors import KafkaError
from aiokafka.protocol.metadata import MetadataRequest

from shared.broker import process
from shared.broker.config import HOST, Layout, NodeSpec, save_layout
from shared.broker.errors import BrokerError, BrokerStartError
from shared.broker.jars import fetch_jars, require_tool
from shared.broker.local_kafka import StopResult
from shared.broker.probe import port_open
from shared.broker.secure_config import (
    _FORMAT_TIMEOUT_S,
    _POLL_S,
    _PROBE_TIMEOUT_S,
    ADMIN_USER,
    DEFAULT_START_TIMEOUT_S,
    DEFAULT_STOP_TIMEOUT_S,
    LISTENER,
    MECHANISM,
    SECURE_CLIENT_PORT,
    SECURE_CONTROLLER_PORT,
    SERVICE_USER,
    Credentials,
    SecureBroker,
    SecureStartResult,
    SecureStatus,
    _new_credentials,
    _write_private,
    broker_info,
    load_credentials,
    render_secure_properties,
    saved_secure_layout,
    secure_layout,
    tls_files,
)
from shared.broker.secure_tls import ensure_tls, find_keytool
from shared.broker.status import run_sync
from shared.broker.storage import cluster_id, stored_cluster_id

# ---------------------------------------------------------------- start


async def start_async(
    timeout: float = DEFAULT_START_TIMEOUT_S, client_port: int | None = None, controller_port: int | None = None
) -> SecureStartResult:
    """Start the secure node, or return at once if it already answers over SASL_SSL.

    Safe to call twice and from two processes (the layout lock serialises spawns). ``timeout``
    counts from the spawn. Raises BrokerToolError when java/keytool/mvn are missing and
    BrokerStartError, with the log tail and the last probe error, when it does not come up.
    """
    began = time.monotonic()
    running = process.running_pid(saved_secure_layout().nodes[0]) is not None
    layout = saved_secure_layout() if running else secure_layout(client_port, controller_port)
    if running and load_credentials(layout.root) is not None:
        error = await probe(layout)
        if error is None:
            return SecureStartResult(broker_info(layout), True, False, time.monotonic() - began)
    layout, spawned, formatted = _launch(client_port, controller_port)
    await _wait_ready(layout, time.monotonic() + timeout)
    return SecureStartResult(broker_info(layout), not spawned, formatted, time.monotonic() - began)


def start(
    timeout: float = DEFAULT_START_TIMEOUT_S, client_port: int | None = None, controller_port: int | None = None
) -> SecureStartResult:
    return run_sync(start_async(timeout, client_port, controller_port))


def _launch(client_port: int | None, controller_port: int | None) -> tuple[Layout, bool, bool]:
    """Under the lock: credentials, certificates, config, one-time format, spawn if not running."""
    java = require_tool("java")
    keytool = find_keytool(java)
    fetch_jars()
    layout = secure_layout(client_port, controller_port)
    with process.locked(layout.lock_path):
        if process.running_pid(saved_secure_layout().nodes[0]) is not None:
            return saved_secure_layout(), False, False  # another process won the race
        node = layout.nodes[0]
        creds = load_credentials(layout.root)
        fresh = creds is None
        if creds is None:
            # Passwords lost but storage formatted with the old SCRAM users: nothing could log in.
            # The broker is a throwaway, so start over rather than ask the developer to clean up.
            shutil.rmtree(node.log_dir, ignore_errors=True)
            creds = _new_credentials(layout.root)
        tls = tls_files(layout.root)
        ensure_tls(keytool, tls, creds.store_password, force=fresh)
        save_layout(layout)
        _write_private(node.properties_path, render_secure_properties(layout, node, creds, tls))
        formatted = not node.formatted
        if formatted:
            _format_with_scram_users(java, node, cluster_id(layout), creds)
        process.spawn_broker(java, node)
    return layout, True, formatted


def _format_with_scram_users(java: str, node: NodeSpec, cluster: str, creds: Credentials) -> None:
    """KRaft keeps SCRAM credentials in the metadata log; --add-scram writes them before the first start,
    which is what lets the broker's own inter-broker login (and the first client) succeed."""
    node.logs_dir.mkdir(parents=True, exist_ok=True)
    scram: list[str] = []
    for user, password in creds.users.items():
        scram += ["--add-scram", f"{MECHANISM}=[name={user},password={password}]"]
    command = process.java_command(
        java, node, "kafka.tools.StorageTool", "format", "-t", cluster, "-c", str(node.properties_path), *scram
    )
    command.insert(1, "-XX:TieredStopAtLevel=1")  # a one-shot tool: C1 alone starts faster
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=_FORMAT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BrokerStartError(f"formatting the secure broker's storage in {node.log_dir} timed out") from exc
    if done.returncode != 0:
        output = "\n".join((done.stdout + done.stderr).strip().splitlines()[-30:])
        for password in creds.users.values():
            output = output.replace(password, "***")
        raise BrokerStartError(
            f"formatting the secure broker's storage in {node.log_dir} failed (exit {done.returncode}):\n{output}"
        )


async def _wait_ready(layout: Layout, deadline: float) -> None:
    node = layout.nodes[0]
    while True:
        if process.running_pid(node) is None:
            raise BrokerStartError(f"the secure Kafka broker exited during startup.\n{process.log_tail(node)}")
        error = await probe(layout)
        if error is None:
            return
        if time.monotonic() >= deadline:
            raise BrokerStartError(
                f"the secure Kafka broker ({node.bootstrap}, {LISTENER}) did not answer a metadata request as "
                f"{ADMIN_USER} before the deadline; last error: {error}. It is left running "
                f"(pid file {node.pid_path}).\n{process.log_tail(node)}"
            )
        await asyncio.sleep(_POLL_S)


async def probe(layout: Layout | None = None, timeout: float = _PROBE_TIMEOUT_S) -> str | None:
    """None when a real MetadataRequest over SASL_SSL as the admin user is answered by OUR node
    (our cluster id, our node id among the live brokers); otherwise why not.

    A TLS handshake, a SCRAM exchange and a metadata answer together: an open port or a TLS
    accept alone would not show the broker can authenticate anyone.
    """
    layout = layout or saved_secure_layout()
    node = layout.nodes[0]
    creds = load_credentials(layout.root)
    tls = tls_files(layout.root)
    if creds is None or not tls.ca_pem.is_file():
        return f"no credentials or CA in {layout.root}"
    if not await port_open(HOST, node.client_port, min(timeout, 1.0)):
        return f"nothing listens on {node.bootstrap} yet"
    try:
        async with asyncio.timeout(timeout):
            conn = await create_conn(
                HOST,
                node.client_port,
                client_id="aidtrail-secure-probe",
                request_timeout_ms=int(timeout * 1000),
                ssl_context=ssl.create_default_context(cafile=str(tls.ca_pem)),
                security_protocol=LISTENER,
                sasl_mechanism=MECHANISM,
                sasl_plain_username=ADMIN_USER,
                sasl_plain_password=creds.admin_password,
            )
            try:
                response: Any = await conn.send(MetadataRequest([]))
            finally:
                conn.close()
    except TimeoutError:
        return f"no answer within {timeout:.0f} s (is another process holding {node.bootstrap}?)"
    except (KafkaError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    expected = stored_cluster_id(layout)
    if expected is not None and getattr(response, "cluster_id", None) != expected:
        return f"{node.bootstrap} answers for cluster {getattr(response, 'cluster_id', None)}, not ours ({expected})"
    if node.node_id not in {int(broker[0]) for broker in response.brokers}:
        return f"node {node.node_id} is not yet registered as a live broker"
    return None


# ---------------------------------------------------------------- stop and status


def stop(timeout: float = DEFAULT_STOP_TIMEOUT_S) -> StopResult:
    """SIGTERM (a clean shutdown keeps the next start fast), SIGKILL after ``timeout``; a no-op if not running."""
    began = time.monotonic()
    layout = saved_secure_layout()
    node = layout.nodes[0]
    with process.locked(layout.lock_path):
        pid = process.running_pid(node)
        if pid is None:
            return StopResult((), (), time.monotonic() - began)
        process.send_signal(pid, signal.SIGTERM)
        process.send_signal(pid, signal.SIGCONT)
        forced: tuple[int, ...] = ()
        if not process.wait_exit(pid, timeout):
            process.send_signal(pid, signal.SIGKILL)
            process.wait_exit(pid, 10.0)
            forced = (node.node_id,)
        process.forget(pid)
        process.running_pid(node)  # clears the pid file
    return StopResult((node.node_id,), forced, time.monotonic() - began)


async def status_async() -> SecureStatus:
    layout = saved_secure_layout()
    pid = process.running_pid(layout.nodes[0])
    answering = pid is not None and await probe(layout) is None
    return SecureStatus(pid, answering, layout.bootstrap, layout.root)


def status() -> SecureStatus:
    return run_sync(status_async())


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    """``python -m shared.broker.secure start|stop|status|env``; exit 3 from status when not answering."""
    parser = argparse.ArgumentParser(
        prog="python -m shared.broker.secure", description="The local SASL_SSL (SCRAM-SHA-512) Kafka broker."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    start_cmd = commands.add_parser("start", help="start (format on first use); no-op if it already answers")
    start_cmd.add_argument("--timeout", type=float, default=DEFAULT_START_TIMEOUT_S)
    start_cmd.add_argument(
        "--port", type=int, default=None, help=f"SASL_SSL client port (default {SECURE_CLIENT_PORT})"
    )
    start_cmd.add_argument("--controller-port", type=int, default=None)
    stop_cmd = commands.add_parser("stop", help="SIGTERM, SIGKILL after --timeout")
    stop_cmd.add_argument("--timeout", type=float, default=DEFAULT_STOP_TIMEOUT_S)
    commands.add_parser("status", help="process and SASL_SSL metadata answer")
    commands.add_parser("env", help="print the AIDTRAIL_* exports for a service (service user)")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            result = start(args.timeout, args.port, args.controller_port)
            verb = "already running" if result.already_running else f"started in {result.elapsed_s:.1f} s"
            print(f"secure Kafka broker {verb} on {result.broker.bootstrap} ({LISTENER}, {MECHANISM})")
            print(f"CA file: {result.broker.ca_file}; `python -m shared.broker.secure env` prints the settings")
        elif args.command == "stop":
            stopped = stop(args.timeout)
            print("stopped" if stopped.stopped else "not running", "(forced)" if stopped.forced else "")
        elif args.command == "status":
            current = status()
            print(f"pid={current.pid} answering={current.answering} bootstrap={current.bootstrap} data={current.root}")
            return 0 if current.answering else 3
        else:
            for name, value in broker_info().env().items():
                print(f"export {name}={value}")
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())


__all__ = [
    "ADMIN_USER",
    "DEFAULT_START_TIMEOUT_S",
    "DEFAULT_STOP_TIMEOUT_S",
    "LISTENER",
    "MECHANISM",
    "SECURE_CLIENT_PORT",
    "SECURE_CONTROLLER_PORT",
    "SERVICE_USER",
    "Credentials",
    "SecureBroker",
    "SecureStartResult",
    "SecureStatus",
    "broker_info",
    "load_credentials",
    "main",
    "probe",
    "render_secure_properties",
    "saved_secure_layout",
    "secure_layout",
    "start",
    "start_async",
    "status",
    "status_async",
    "stop",
    "tls_files",
]
