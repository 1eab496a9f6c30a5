"""`python -m services.audit.measure --topic-prefix P [--bootstrap B]`: replay once and print, as JSON, the
throughput and this process's peak resident memory. Run in a fresh process so the peak is the replay's own;
the flat-memory test and benchmarks compare these numbers across log sizes. CPU seconds are reported too:
on a shared machine wall-clock throughput says more about the neighbours than about the replay."""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from pathlib import Path

import orjson

from services.audit.replay import replay
from shared.settings import Settings


def peak_rss_mib() -> float:
    """The true high-water mark, not a sample that could miss the peak. On Linux VmHWM of this process's own
    address space: ru_maxrss would also count the parent's pages this process was forked with."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--topic-prefix", required=True)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    args = parser.parse_args(argv)
    settings = Settings(topic_prefix=args.topic_prefix, kafka_bootstrap=args.bootstrap)
    cpu = time.process_time()
    result = asyncio.run(replay(settings))
    cpu = time.process_time() - cpu
    summary = {
        **result.stats.to_json(),
        "batches": len(result.tracks),
        "ok": result.ok,
        "failed_checks": result.failed_checks,
        "cpu_seconds": round(cpu, 3),
        "events_per_cpu_second": round(result.stats.records / cpu, 1) if cpu else None,
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }
    sys.stdout.write(orjson.dumps(summary).decode() + "\n")


if __name__ == "__main__":
    main()
