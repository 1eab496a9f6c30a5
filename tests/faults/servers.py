"""Private Kafka brokers and a private PostgreSQL server for the fault tests.

Why private: these tests kill, stop and restart their servers. The shared broker on 9092 and the shared PostgreSQL
on 5432 serve every other test (and every other engineer on the machine); killing those would fail tests that have
nothing to do with the fault. Each private server lives in its own directory on its own free ports, runs the very
binaries and tooling the project's scripts run (`shared.broker`, the Debian/PGDG PostgreSQL that
deploy/postgres/ensure-postgres.sh installs), and is stopped and removed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import asyncpg  # type: ignore[import-untyped,unused-ignore]

from shared import broker

T = TypeVar("T")
PORT_RANGE = (20_000, 32_000)  # below Linux's ephemeral range, so no outgoing connection takes a chosen port
START_TIMEOUT_SECONDS = 120.0
PG_COMMAND_TIMEOUT_SECONDS = 120.0

_ENV_LOCK = threading.Lock()


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(size: int, avoid: frozenset[int] = frozenset()) -> int:
    """A base port such that base .. base+size-1 are all free now (cluster node N listens on base+N-1)."""
    for _ in range(200):
        base = random.randrange(*PORT_RANGE)
        block = range(base, base + size)
        if not avoid.intersection(block) and all(_free(port) for port in block):
            return base
    raise RuntimeError(f"found no block of {size} free ports on 127.0.0.1")


# --- Kafka ------------------------------------------------------------------------------------------------------


class PrivateKafka:
    """A single node or an N-node KRaft cluster under its own AIDTRAIL_HOME, on its own ports.

    `shared.broker` finds its layout through AIDTRAIL_HOME and the port variables, so each call runs with those set
    (under a lock, in a worker thread so the event loop, and with it the load, keeps running meanwhile)."""

    def __init__(self, home: Path, nodes: int = 1):
        self.home = home
        self.nodes = nodes
        self.cluster = nodes > 1
        self.client_port = free_port_block(nodes)
        self.controller_port = free_port_block(nodes, frozenset(range(self.client_port, self.client_port + nodes)))

    def _env(self) -> dict[str, str]:
        kind = "CLUSTER_" if self.cluster else ""
        return {
            "AIDTRAIL_HOME": str(self.home),
            f"AIDTRAIL_KAFKA_{kind}PORT": str(self.client_port),
            f"AIDTRAIL_KAFKA_{kind}CONTROLLER_PORT": str(self.controller_port),
        }

    def _call(self, action: Callable[[], T]) -> T:
        with _ENV_LOCK, _environment(self._env()):
            return action()

    async def _run(self, action: Callable[[], T]) -> T:
        return await asyncio.to_thread(self._call, action)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.client_port + i}" for i in range(self.nodes))

    async def start(self) -> None:
        """Start every node (a no-op while they already answer)."""
        await self._run(lambda: broker.start(self.nodes, START_TIMEOUT_SECONDS))

    async def kill(self) -> None:
        """kill -9 the single node; returns once the process is gone."""
        await self._run(lambda: broker.kill_broker(signal.SIGKILL))

    async def stop_node(self, node_id: int) -> None:
        await self._run(lambda: broker.stop_node(node_id))

    async def start_node(self, node_id: int) -> None:
        await self._run(lambda: broker.start_node(node_id, START_TIMEOUT_SECONDS))

    async def stop(self) -> None:
        await self._run(lambda: broker.stop(self.cluster))


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --- PostgreSQL -------------------------------------------------------------------------------------------------


def postgres_bin_dir() -> Path:
    """The newest Debian/PGDG server (what ensure-postgres.sh installs), else whatever initdb is on PATH."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name), reverse=True
    )
    if candidates:
        return candidates[0].parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError(
        "no PostgreSQL server binaries (initdb, pg_ctl) found; run deploy/postgres/ensure-postgres.sh, which "
        "installs them, or `apt-get install postgresql`"
    )


class PrivatePostgres:
    """A throwaway cluster (initdb) on a free port, trust auth on loopback, stopped and started with pg_ctl.

    PostgreSQL refuses to run as root, so as root every command runs as the `postgres` OS user, which Debian's
    package creates, in a directory under the system temp dir it can reach."""

    def __init__(self) -> None:
        self.bin = postgres_bin_dir()
        self.port = free_port_block(1)
        self.root = Path(tempfile.mkdtemp(prefix="aidtrail-faults-pg-"))
        self.data = self.root / "data"
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.prefix:
            shutil.chown(self.root, "postgres", "postgres")

    async def _pg(self, tool: str, *args: str) -> None:
        process = await asyncio.create_subprocess_exec(
            *self.prefix, str(self.bin / tool), *args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        output, _ = await asyncio.wait_for(process.communicate(), PG_COMMAND_TIMEOUT_SECONDS)
        if process.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)} failed ({process.returncode}):\n{output.decode()[-2000:]}")

    async def init(self) -> None:
        await self._pg("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            "max_connections": "100",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("".join(f"{name} = {value}\n" for name, value in settings.items()))

    async def start(self) -> None:
        await self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.root / "postgres.log"), "-w", "-t", "60", "start")

    async def stop(self, mode: str = "fast") -> None:
        """`fast` terminates every session, as an operator's restart does; the services see their connections die."""
        await self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    async def running(self) -> bool:
        try:
            await self._pg("pg_ctl", "-D", str(self.data), "status")
        except RuntimeError:
            return False
        return True

    async def create_database(self, name: str) -> str:
        conn = await asyncpg.connect(host="127.0.0.1", port=self.port, user="postgres", database="postgres")
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"

    async def remove(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError):
            if await self.running():
                await self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
