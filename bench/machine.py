"""What the figures were measured on, written next to them: a ratio means little without the machine."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil  # type: ignore[import-untyped,unused-ignore]

CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True, slots=True)
class Machine:
    cpu: str
    cores: int
    ram_gib: float
    system: str
    python: str
    date: str

    def describe(self) -> str:
        return (
            f"{self.cpu}, {self.cores} cores, {self.ram_gib:.0f} GiB RAM, {self.system}, Python {self.python}, "
            f"{self.date}"
        )


def cpu_model() -> str:
    """`platform.processor()` is empty on most Linux systems; /proc/cpuinfo names the model."""
    if CPUINFO.exists():
        for line in CPUINFO.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def this_machine() -> Machine:
    return Machine(
        cpu=cpu_model(),
        cores=os.cpu_count() or 1,
        ram_gib=psutil.virtual_memory().total / 2**30,
        system=f"{platform.system()} {platform.release()}",
        python=sys.version.split()[0],
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
