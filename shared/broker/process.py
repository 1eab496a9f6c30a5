"""Broker JVM processes: spawn detached, find by pid file, signal, wait, read logs."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from shared.broker.config import NodeSpec
from shared.broker.errors import BrokerToolError
from shared.broker.jars import classpath
from shared.broker.paths import log4j_config

HEAP_ENV = "AIDTRAIL_KAFKA_HEAP"
# Test runs leave thousands of partitions behind between cleanups; 512 MiB once ran out of memory.
DEFAULT_HEAP = "1g"
JVM_OPTIONS = (
    "-Xms256m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
_POLL_S = 0.05
_START_MARKER = "=== aidtrail: starting kafka.Kafka"

# Brokers spawned by this interpreter: kept so they can be reaped (no zombies after kill -9)
# and so Popen does not warn about a child it forgot.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def max_heap() -> str:
    """The broker's -Xmx: ``AIDTRAIL_KAFKA_HEAP`` (a JVM size such as ``768m`` or ``2g``), else 1g."""
    heap = os.environ.get(HEAP_ENV, "").strip() or DEFAULT_HEAP
    if not re.fullmatch(r"[1-9][0-9]*[kKmMgG]", heap):
        raise BrokerToolError(
            f"{HEAP_ENV}={heap!r} is not a JVM heap size; use a number with k, m or g, e.g. 768m or 2g"
        )
    return heap


def java_command(java: str, node: NodeSpec, main_class: str, *args: str) -> list[str]:
    """Same JVM flags for the storage tool and the broker so both log to the node's logs dir."""
    return [
        java,
        f"-Xmx{max_heap()}",
        *JVM_OPTIONS,
        f"-Dlog4j2.configurationFile={log4j_config()}",
        f"-Dkafka.logs.dir={node.logs_dir}",
        "-cp",
        classpath(),
        main_class,
        *args,
    ]


def spawn_broker(java: str, node: NodeSpec) -> int:
    """Start ``kafka.Kafka`` in its own session so it outlives the CLI or pytest that started it."""
    node.logs_dir.mkdir(parents=True, exist_ok=True)
    _rotate(node.console_path)
    _mark_start(node)
    command = java_command(java, node, "kafka.Kafka", str(node.properties_path))
    with node.console_path.open("wb") as console:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            cwd=node.data_dir,
            start_new_session=True,
        )
    _CHILDREN[child.pid] = child
    node.pid_path.write_text(f"{child.pid}\n", encoding="utf-8")
    return child.pid


def running_pid(node: NodeSpec) -> int | None:
    """The node's live broker pid; a stale pid file (crash, kill -9, reboot) is removed."""
    pid = _read_pid(node.pid_path)
    if pid is None:
        return None
    if is_alive(pid) and _is_this_broker(pid, node):
        return pid
    with contextlib.suppress(FileNotFoundError):
        node.pid_path.unlink()
    return None


def is_alive(pid: int) -> bool:
    """Zombies count as dead: a kill -9'd broker must not look alive until someone reaps it."""
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _proc_state(pid) not in ("Z", "X")


def send_signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_exit(pid: int, timeout: float) -> bool:
    """Poll rather than wait(): the broker may have been started by another process."""
    deadline = time.monotonic() + timeout
    while is_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)
    return True


def forget(pid: int) -> None:
    _CHILDREN.pop(pid, None)


def log_tail(node: NodeSpec, lines: int = 15) -> str:
    """Errors first, then the last lines: the real cause (e.g. a port in use) is usually buried
    above a long run of shutdown messages."""
    parts = []
    server_log = _read_end(node.logs_dir / "server.log").rpartition(_START_MARKER)[2]
    problems = _problem_lines(server_log)
    if problems:
        parts.append(f"--- errors in {node.logs_dir / 'server.log'} ---\n" + "\n".join(problems))
    for path, text in ((node.logs_dir / "server.log", server_log), (node.console_path, _read_end(node.console_path))):
        tail = "\n".join(text.strip().splitlines()[-lines:])
        if tail:
            parts.append(f"--- tail of {path} ---\n{tail}")
    return "\n".join(parts) if parts else f"(no log output under {node.data_dir})"


def _problem_lines(text: str, limit: int = 12) -> list[str]:
    """The first ERROR/FATAL lines (root cause first), the exception line after each, every "Caused by"."""
    found: list[str] = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if "] ERROR " in line or "] FATAL " in line:
            found.append(line)
            if index + 1 < len(lines) and not lines[index + 1].startswith("["):
                found.append("    " + lines[index + 1])
        elif line.startswith("Caused by:"):
            found.append("    " + line)
    return found[:limit]


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """Serialises start/stop across processes: two test runs must not both spawn a broker."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="utf-8").strip())
    except (FileNotFoundError, ValueError):
        return None


def _is_this_broker(pid: int, node: NodeSpec) -> bool:
    """Guards against pid reuse: the pid must be a kafka.Kafka JVM on this node's config."""
    if pid in _CHILDREN:
        return True
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no procfs (macOS): trust the pid file
    except PermissionError:
        return False
    if not raw:
        return True  # exec still in progress: the kernel shows an empty cmdline for a moment
    argv = raw.decode(errors="replace").split("\0")
    return "kafka.Kafka" in argv and str(node.properties_path) in argv


def _proc_state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "?"
    # Format: "pid (comm) S ..."; comm may contain spaces or parentheses.
    return stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else "?"


def _mark_start(node: NodeSpec) -> None:
    """Lets log_tail skip errors of earlier runs: server.log is appended to across restarts."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    with (node.logs_dir / "server.log").open("a", encoding="utf-8") as log:
        log.write(f"{_START_MARKER} at {stamp} ===\n")


def _rotate(path: Path) -> None:
    if path.exists():
        path.replace(path.with_name(path.name + ".1"))


def _read_end(path: Path, size: int = 256 * 1024) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - size))
            return handle.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
