"""Measured servers run as uvicorn subprocesses (`python -m bench.serve`), one process each, like production.

A subprocess rather than an in-process app: the load generator must not share an event loop (or a GIL) with the
server it measures, and ours and the baseline must get exactly the same treatment. Output goes to a log file in
the run's scratch directory (a pipe nobody reads could fill and stall the server); its tail is shown on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_DEADLINE_S = 90.0
STOP_DEADLINE_S = 15.0
POLL_S = 0.1


class ServerFailed(RuntimeError):
    """A server did not come up (or died); the message carries the tail of its log."""


@dataclass
class Server:
    app: str
    url: str
    process: asyncio.subprocess.Process
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    async def probe(self, client: httpx.AsyncClient) -> dict[str, Any]:
        response = await client.get(f"{self.url}/_bench/probe", timeout=30)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(settings: dict[str, str], code_root: Path = REPO_ROOT) -> dict[str, str]:
    """The parent's environment minus any AIDTRAIL_* of its own, plus this server's settings.

    `code_root` first on the path: an A/B comparison runs the same bench against another copy of shared/.
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("AIDTRAIL_")}
    roots = dict.fromkeys([str(code_root), str(REPO_ROOT), env.get("PYTHONPATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, roots))
    return env | {f"AIDTRAIL_{name.upper()}": value for name, value in settings.items()}


@asynccontextmanager
async def served(
    app: str, settings: dict[str, str], logdir: Path, *, probe: bool = False, code_root: Path = REPO_ROOT
) -> AsyncIterator[Server]:
    port = free_port()
    log = logdir / f"{app}-{port}.log"
    args = [sys.executable, "-m", "bench.serve", app, str(port), *(["--probe"] if probe else [])]
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            *args, cwd=code_root, env=server_env(settings, code_root), stdout=sink, stderr=asyncio.subprocess.STDOUT
        )
    server = Server(app, f"http://127.0.0.1:{port}", process, log)
    try:
        await wait_ready(server, needs_kafka=app != "baseline")
        yield server
    finally:
        await stop(server)


async def wait_ready(server: Server, *, needs_kafka: bool) -> None:
    """Ready means: it answers /health/ready and (services) every consumer has its partitions."""
    deadline = time.monotonic() + READY_DEADLINE_S
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() < deadline:
            if server.process.returncode is not None:
                raise ServerFailed(f"{server.app} exited with {server.process.returncode}:\n{server.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{server.url}/health/ready")).status_code == 200 and (
                    not needs_kafka or (await server.probe(client))["assigned"]
                ):
                    return
            await asyncio.sleep(POLL_S)
    raise ServerFailed(f"{server.app} not ready after {READY_DEADLINE_S:.0f} s:\n{server.log_tail()}")


async def stop(server: Server) -> None:
    """SIGTERM (uvicorn shuts down gracefully, the lifespan stops relay and consumers), SIGKILL if it hangs."""
    if server.process.returncode is not None:
        return
    server.process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(server.process.wait(), STOP_DEADLINE_S)
    except TimeoutError:
        server.process.kill()
        await server.process.wait()
