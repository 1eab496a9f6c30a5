"""Host tools and the Kafka jars fetched from Maven Central."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shared.broker.errors import BrokerToolError
from shared.broker.paths import deploy_dir, kafka_version, lib_dir, pom_path

_INSTALL_HINTS = {
    "java": "a Java 17+ runtime (Debian/Ubuntu: `apt-get install openjdk-17-jre-headless`), or set JAVA_HOME",
    "mvn": "Apache Maven 3.6+ (Debian/Ubuntu: `apt-get install maven`); it fetches the Kafka jars from Maven Central",
}
_STAMP_NAME = ".aidtrail-stamp"
_MVN_TIMEOUT_S = 900.0


def find_tool(name: str) -> str | None:
    """Locate ``java`` or ``mvn``; JAVA_HOME wins for java so a developer can pick a JDK per shell."""
    if name == "java":
        java_home = os.environ.get("JAVA_HOME")
        if java_home:
            candidate = Path(java_home) / "bin" / "java"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return shutil.which(name)


def require_tool(name: str) -> str:
    """Fail early with what to install instead of a FileNotFoundError deep inside subprocess."""
    found = find_tool(name)
    if found is None:
        hint = _INSTALL_HINTS.get(name, f"`{name}`")
        raise BrokerToolError(
            f"`{name}` was not found on PATH; the local Kafka broker needs {hint}. Install it and re-run."
        )
    return found


def classpath() -> str:
    """The JVM expands the trailing ``*`` itself, so no shell is involved."""
    return f"{lib_dir()}{os.sep}*"


def jars_are_current() -> bool:
    """Stale when the pom changed since the last fetch or the pinned Kafka jar is gone."""
    stamp = lib_dir() / _STAMP_NAME
    if not stamp.is_file() or not _kafka_jar().is_file():
        return False
    return stamp.read_text(encoding="utf-8").strip() == _pom_digest()


def fetch_jars(force: bool = False) -> Path:
    """Copy the pinned Kafka jars into deploy/kafka/target/lib unless they are already current.

    The lib dir is wiped before a refetch: ``java -cp 'lib/*'`` would otherwise see two Kafka
    versions after a version bump.
    """
    if not force and jars_are_current():
        return lib_dir()
    mvn = require_tool("mvn")
    with _fetch_lock():
        if not force and jars_are_current():
            return lib_dir()
        shutil.rmtree(lib_dir(), ignore_errors=True)
        _run_maven(mvn)
        if not _kafka_jar().is_file():
            raise BrokerToolError(f"Maven finished but {_kafka_jar()} is missing; check {pom_path()}")
        (lib_dir() / _STAMP_NAME).write_text(_pom_digest() + "\n", encoding="utf-8")
    return lib_dir()


def _run_maven(mvn: str) -> None:
    command = [mvn, "-B", "-q", "-f", str(pom_path()), "dependency:copy-dependencies"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=_MVN_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BrokerToolError(f"`{' '.join(command)}` did not finish in {_MVN_TIMEOUT_S:.0f} s") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise BrokerToolError(
            f"Maven could not fetch the Kafka jars (exit {done.returncode}); is Maven Central "
            f"reachable?\n$ {' '.join(command)}\n{tail}"
        )


def _kafka_jar() -> Path:
    return lib_dir() / f"kafka_2.13-{kafka_version()}.jar"


def _pom_digest() -> str:
    return hashlib.sha256(pom_path().read_bytes()).hexdigest()


@contextmanager
def _fetch_lock() -> Iterator[None]:
    """Parallel test runs in one checkout must not wipe each other's half-copied lib dir."""
    lock_path = deploy_dir() / "target" / ".fetch.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
