"""Runs services as real uvicorn processes, the way an operator would, for the demo and the end-to-end and
fault tests: each with its own database and log file, all sharing one broker and one topic prefix.

Real processes matter: only they can be killed with SIGKILL between a commit and a publish.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shared.settings import DEV_JWT_SECRET

READY_DEADLINE_SECONDS = 90.0
POLL_SECONDS = 0.1
SERVICE_NAMES = ("pledge", "warehouse", "dispatch", "recipient")
DEFAULT_PORTS = {"pledge": 8001, "warehouse": 8002, "dispatch": 8003, "recipient": 8004, "audit": 8005}


class StackError(RuntimeError):
    """A service process did not come up; the message carries the tail of its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class StackConfig:
    run_dir: Path
    topic_prefix: str = "aidtrail"
    kafka_bootstrap: str = "127.0.0.1:9092"
    jwt_secret: str = DEV_JWT_SECRET
    database_urls: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)

    def database_url(self, service: str) -> str:
        return self.database_urls.get(service) or f"sqlite+aiosqlite:///{self.run_dir / f'{service}.db'}"

    def port(self, service: str) -> int:
        if service not in self.ports:
            self.ports[service] = free_port()
        return self.ports[service]

    def env(self, service: str) -> dict[str, str]:
        return {
            **os.environ,
            "AIDTRAIL_SERVICE": service,
            "AIDTRAIL_HOME": str(self.run_dir),
            "AIDTRAIL_DATABASE_URL": self.database_url(service),
            "AIDTRAIL_TOPIC_PREFIX": self.topic_prefix,
            "AIDTRAIL_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "AIDTRAIL_JWT_SECRET": self.jwt_secret,
            "AIDTRAIL_RELAY_POLL_SECONDS": "0.5",
            **self.extra_env,
        }


@dataclass
class ServiceProcess:
    name: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self, env: dict[str, str]) -> None:
        command = [sys.executable, "-m", "shared.cli.main", "serve", self.name, "--port", str(self.port)]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def signal(self, sig: signal.Signals) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)

    def wait_exit(self, deadline: float = 20.0) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=deadline)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class Stack:
    """The four services (or a chosen subset) as processes; start waits until each reports ready."""

    def __init__(self, config: StackConfig, services: tuple[str, ...] = SERVICE_NAMES):
        self.config = config
        config.run_dir.mkdir(parents=True, exist_ok=True)
        self.services = {
            name: ServiceProcess(name, config.port(name), config.run_dir / f"{name}.log") for name in services
        }

    def url(self, service: str) -> str:
        return self.services[service].url

    async def start(self, *names: str) -> None:
        chosen = names or tuple(self.services)
        for name in chosen:
            self.services[name].spawn(self.config.env(name))
        await asyncio.gather(*(self.wait_ready(name) for name in chosen))

    async def wait_ready(self, name: str, deadline: float = READY_DEADLINE_SECONDS) -> None:
        service = self.services[name]
        until = time.monotonic() + deadline
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < until:
                if service.process is not None and service.process.poll() is not None:
                    raise StackError(f"{name} exited with {service.process.returncode}:\n{service.log_tail()}")
                if await _answers_ready(client, f"{service.url}/health/ready"):
                    return
                await asyncio.sleep(POLL_SECONDS)
        raise StackError(f"{name} was not ready after {deadline:.0f}s:\n{service.log_tail()}")

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown hook runs, exactly like a crash."""
        service = self.services[name]
        service.signal(signal.SIGKILL)
        service.wait_exit()

    async def restart(self, name: str) -> None:
        self.services[name].spawn(self.config.env(name))
        await self.wait_ready(name)

    def stop(self) -> None:
        for service in self.services.values():
            service.signal(signal.SIGTERM)
        for service in self.services.values():
            service.wait_exit()


async def _answers_ready(client: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False
