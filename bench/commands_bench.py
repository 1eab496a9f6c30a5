"""Row: commands per second over HTTP, ours against a plain insert, on SQLite and on PostgreSQL.

Ours: POST /pledges with one line on the real pledge service (uvicorn subprocess): idempotency check, donor check,
pledge row, two events appended to the hash chain with their outbox rows, batch view refreshed, one commit; the
outbox relay and the service's own consumer run in the same process, publishing and replicating while it serves.
Baseline: bench.baseline_app, the same body into the same row of the same kind of database, nothing else.

Each run gets a fresh server and a fresh database; ours and the baseline alternate (ABBA order over rounds), so
drift on a noisy machine hits both, and the median of the rounds is reported.
"""

from __future__ import annotations

import statistics
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped,unused-ignore]

from bench.environment import fresh_database, run_topics
from bench.load import LoadResult, closed_loop, new_client
from bench.results import Direction, Row, Target, fmt_rate, ratio
from bench.servers import REPO_ROOT, served
from shared.settings import Settings
from shared.web.auth import Role, mint_token

DONOR = "bench-donor"
LINE = {
    "item": "n95-mask",
    "quantity": 1000,
    "unit": "piece",
    "standard": "N95",
    "warehouse_id": "wh-wuhan-1",
    "designated_recipient_id": "jinyintan-hospital",
}
TARGET = Target(Direction.AT_LEAST, 0.7)


@dataclass(frozen=True)
class LoadPlan:
    seconds: float
    concurrency: int
    rounds: int
    warmup: int = 50
    limit: int = 200_000
    code_root: Path = REPO_ROOT


def pledge_body(n: int) -> dict[str, Any]:
    return {"donor_id": DONOR, "purpose": f"bench pledge {n}", "lines": [LINE]}


def auth_headers() -> dict[str, str]:
    """The servers run with the default development secret, so a token minted with default settings passes."""
    return {"Authorization": f"Bearer {mint_token('bench', Role.admin, settings=Settings())}"}


async def _prepare(client: httpx.AsyncClient, url: str, app: str, headers: dict[str, str]) -> None:
    if app == "pledge":
        response = await client.post(f"{url}/donors", json={"donor_id": DONOR, "name": "Bench donor"}, headers=headers)
        response.raise_for_status()


async def one_run(
    app: str, backend: str, kafka: str, workdir: Path, plan: LoadPlan, code_root: Path = REPO_ROOT
) -> LoadResult:
    """Fresh database, fresh server, warm-up, then the measured closed loop."""
    headers = auth_headers()

    async def send(client: httpx.AsyncClient, n: int) -> httpx.Response:
        return await client.post(f"{server.url}/pledges", json=pledge_body(n), headers=headers)

    async with (
        fresh_database(backend, workdir) as url,
        run_topics(kafka, f"bench-cmd-{uuid.uuid4().hex[:8]}") as prefix,
    ):
        settings = {"database_url": url, "kafka_bootstrap": kafka, "topic_prefix": prefix, "log_level": "WARNING"}
        async with (
            served(app, settings, workdir, code_root=code_root) as server,
            new_client(plan.concurrency) as client,
        ):
            await _prepare(client, server.url, app, headers)
            await closed_loop(client, send, plan.concurrency, plan.seconds, plan.warmup)
            cpu = cpu_seconds(server.process.pid)
            result = await closed_loop(client, send, plan.concurrency, plan.seconds, plan.limit)
            result.server_cpu = cpu_seconds(server.process.pid) - cpu
            return result


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a server process: CPU per command is less disturbed by a noisy machine than rates."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def measure(backend: str, kafka: str, workdir: Path, plan: LoadPlan) -> Row:
    runs: dict[str, list[LoadResult]] = {"pledge": [], "baseline": []}
    for round_no in range(plan.rounds):
        order = ("baseline", "pledge") if round_no % 2 == 0 else ("pledge", "baseline")
        for app in order:
            root = plan.code_root if app == "pledge" else REPO_ROOT
            runs[app].append(await one_run(app, backend, kafka, workdir, plan, code_root=root))
    ours = statistics.median(r.rate for r in runs["pledge"])
    base = statistics.median(r.rate for r in runs["baseline"])
    return Row(
        what=f"commands/s over HTTP, {backend}",
        ours=fmt_rate(ours),
        baseline=fmt_rate(base),
        ratio=ratio(ours, base),
        target=TARGET,
        checked=ratio(ours, base),
        notes=_notes(runs, plan),
        extra={"ours_per_s": ours, "baseline_per_s": base},
    )


def _notes(runs: dict[str, list[LoadResult]], plan: LoadPlan) -> str:
    errors = sum(r.errors for rs in runs.values() for r in rs)
    share = max(r.client_core_share for rs in runs.values() for r in rs)
    first = next((r.first_error for rs in runs.values() for r in rs if r.first_error), None)
    ours_cpu = statistics.median(r.server_cpu_per_request for r in runs["pledge"]) * 1000
    base_cpu = statistics.median(r.server_cpu_per_request for r in runs["baseline"]) * 1000
    note = (
        f"{plan.concurrency} clients, {plan.seconds:g} s x {plan.rounds} rounds; server CPU/command "
        f"{ours_cpu:.1f} ms vs {base_cpu:.1f} ms; client CPU <= {share:.0%} of a core"
    )
    return note + (f"; {errors} errors, first: {first}" if errors else "")
