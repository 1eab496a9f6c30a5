"""The AsyncAPI project's own validator (`@asyncapi/cli` from npm), installed into the project, never globally.

We pin 4.1.1: the newest release whose declared Node engines include Node 20, which our machines run (the 5.x
and 6.x lines require Node 24). The install lives in `.aidtrail/node` (gitignored); `./dev.sh test` runs
`python -m shared.cli.contract_commands install-cli`, which skips the install when that version is present.
The CLI's anonymous usage metrics are switched off through a config file of our own, so runs never phone home.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from shared.settings import REPO_ROOT

CLI_PACKAGE = "@asyncapi/cli"
CLI_VERSION = "4.1.1"
NODE_PREFIX = REPO_ROOT / ".aidtrail" / "node"
CLI_BIN = NODE_PREFIX / "node_modules" / ".bin" / "asyncapi"
METRICS_CONFIG = NODE_PREFIX / "asyncapi-analytics.json"
VALIDATE_TIMEOUT_SECONDS = 180


class ValidatorMissing(RuntimeError):
    """The CLI is not installed; the message is the command that installs it."""


@dataclass(frozen=True)
class ValidationResult:
    ok: bool
    output: str


def install_command() -> list[str]:
    return ["npm", "install", "--prefix", str(NODE_PREFIX), "--no-audit", "--no-fund", f"{CLI_PACKAGE}@{CLI_VERSION}"]


def install_hint() -> str:
    return (
        f"the AsyncAPI CLI is not installed in {NODE_PREFIX}; install it with "
        f"`python -m shared.cli.contract_commands install-cli` (which runs `{' '.join(install_command())}`), "
        "or run ./dev.sh test, which does it for you"
    )


def installed_version() -> str | None:
    manifest = NODE_PREFIX / "node_modules" / CLI_PACKAGE / "package.json"
    if not manifest.is_file() or not CLI_BIN.exists():
        return None
    version = json.loads(manifest.read_text(encoding="utf-8")).get("version")
    return str(version) if version else None


def ensure_installed() -> bool:
    """Install the pinned CLI unless it is already there; True when this call installed it."""
    if installed_version() == CLI_VERSION:
        return False
    if shutil.which("npm") is None:
        raise ValidatorMissing("npm not found: install Node.js 20 or newer (Debian/Ubuntu: apt-get install nodejs npm)")
    NODE_PREFIX.mkdir(parents=True, exist_ok=True)
    subprocess.run(install_command(), check=True, cwd=REPO_ROOT)
    if installed_version() != CLI_VERSION:
        raise ValidatorMissing(f"npm finished but {CLI_PACKAGE}@{CLI_VERSION} is not in {NODE_PREFIX}")
    return True


def _cli_environment() -> dict[str, str]:
    METRICS_CONFIG.write_text(
        json.dumps({"analyticsEnabled": "false", "infoMessageShown": "true", "userID": "aidtrail"}), encoding="utf-8"
    )
    return {**os.environ, "ASYNCAPI_METRICS_CONFIG_PATH": str(METRICS_CONFIG), "SUPPRESS_NO_CONFIG_WARNING": "1"}


def validate(path: Path, fail_severity: str = "warn") -> ValidationResult:
    """Run `asyncapi validate`; fails on diagnostics of `fail_severity` or worse (errors and warnings by
    default: informational hints such as "a newer AsyncAPI version exists" pass)."""
    if installed_version() is None:
        raise ValidatorMissing(install_hint())
    command = [str(CLI_BIN), "validate", str(path), "--fail-severity", fail_severity]
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=VALIDATE_TIMEOUT_SECONDS,
        env=_cli_environment(),
        cwd=NODE_PREFIX,
        check=False,
    )
    return ValidationResult(ok=completed.returncode == 0, output=completed.stdout + completed.stderr)
