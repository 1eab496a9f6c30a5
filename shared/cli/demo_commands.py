"""`aidtrail demo`: the Hubei 2020 scenario from pledge to audited delivery, on real processes and a real broker."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from shared.broker.local_kafka import start_async as start_broker
from shared.devstack.processes import DEFAULT_PORTS, SERVICE_NAMES, Stack, StackConfig, free_port
from shared.scenario.client import ScenarioClient
from shared.scenario.hubei2020 import Hubei2020, ScenarioResult
from shared.scenario.verify import BatchCheck, verify
from shared.settings import Settings, get_settings

console = Console(width=160) if not Console().is_terminal else Console()


def demo(
    keep_running: bool = typer.Option(False, help="Leave the services running after the demo."),
    run_dir: Path | None = typer.Option(None, help="Where databases, logs and reports go."),
) -> None:
    """Run the demo scenario end to end and print what every batch went through."""
    ok = asyncio.run(run_demo(keep_running=keep_running, run_dir=run_dir))
    raise typer.Exit(0 if ok else 1)


def _stack_config(settings: Settings, run_dir: Path | None) -> StackConfig:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    directory = run_dir or settings.home / "demo" / stamp
    ports = {name: port if _port_free(port) else free_port() for name, port in DEFAULT_PORTS.items()}
    return StackConfig(
        run_dir=directory,
        topic_prefix=f"demo-{stamp}",
        kafka_bootstrap=settings.kafka_bootstrap,
        jwt_secret=settings.jwt_secret,
        ports=ports,
    )


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


async def run_demo(*, keep_running: bool = False, run_dir: Path | None = None) -> bool:
    settings = get_settings()
    console.rule("[bold]aidtrail demo: Hubei 2020, from pledge to audited delivery")
    started = time.monotonic()
    broker = await start_broker()
    how = "already running" if broker.already_running else f"started in {broker.elapsed_s:.1f}s"
    console.print(f"Kafka broker: {broker.bootstrap} ({how})")
    config = _stack_config(settings, run_dir)
    stack = Stack(config, SERVICE_NAMES)
    try:
        await stack.start()
        console.print("Services: " + ", ".join(f"{n} {stack.url(n)}" for n in SERVICE_NAMES))
        scenario_settings = settings.model_copy(update={"topic_prefix": config.topic_prefix})
        client = ScenarioClient({n: stack.url(n) for n in SERVICE_NAMES}, scenario_settings)
        try:
            result = await Hubei2020(client, progress=lambda line: console.print(f"  • {line}")).run()
            checks = await verify(client, result)
        finally:
            await client.close()
        print_summary(result, checks)
        audited = await audit_demo(scenario_settings, config.run_dir)
        console.print(f"Took {time.monotonic() - started:.1f}s; {client.calls} API calls. Logs in {config.run_dir}")
        return all(check.ok for check in checks) and audited
    finally:
        if keep_running:
            console.print("Services keep running; stop them with Ctrl-C or kill the uvicorn processes.")
        else:
            stack.stop()


def print_summary(result: ScenarioResult, checks: list[BatchCheck]) -> None:
    table = Table(title="Every batch, rebuilt from its events by each of the four services")
    for column in ("batch", "item", "status", "pledged", "received", "delivered", "confirmed", "recipient", "checks"):
        table.add_column(column)
    for check in checks:
        state = check.state
        recipient = state.get("delivered_to_recipient_id") or state.get("allocated_recipient_id") or "-"
        verdict = "[green]ok" if check.ok else f"[red]{'; '.join(check.violations) or check.seen}"
        table.add_row(
            check.batch_id,
            str(state["item"]),
            str(state["status"]),
            str(state["quantity_pledged"] or "-"),
            str(state["quantity_received"] or "-"),
            str(state["delivered"] or "-"),
            str(state["confirmed_received"] or "-"),
            str(recipient),
            verdict,
        )
    console.print(table)
    failed = [c.batch_id for c in checks if not c.ok]
    console.print(
        f"{len(checks)} batches, {len(result.shipments)} shipments; "
        + (
            "[green]every batch is where the scenario expects and every quantity adds up"
            if not failed
            else f"[red]{len(failed)} batch(es) off: {', '.join(failed)}"
        )
    )


async def audit_demo(settings: Settings, run_dir: Path) -> bool:
    """Replays the demo's topics with the auditor's own consumer; reports go next to the logs."""
    from services.audit.replay import AuditOptions, replay
    from services.audit.report_html import render as render_html
    from services.audit.report_json import dumps, report
    from services.audit.report_markdown import render as render_markdown

    console.rule("[bold]Audit: replaying the log read-only and checking every quantity")
    result = await replay(settings, options=AuditOptions(progress=False))
    (run_dir / "audit.json").write_bytes(dumps(report(result)))
    (run_dir / "audit.md").write_text(render_markdown(result))
    (run_dir / "audit.html").write_text(render_html(result))
    table = Table(title="Audit checks")
    for column in ("check", "status", "errors", "warnings"):
        table.add_column(column)
    for check in result.checks:
        colour = {"pass": "green", "fail": "red", "warn": "yellow"}[check.status]
        table.add_row(check.spec.name, f"[{colour}]{check.status.upper()}", str(check.errors), str(check.warnings))
    console.print(table)
    stats = result.stats
    console.print(
        f"{stats.records} events replayed ({stats.batch_events} batch, {stats.reference_events} reference) "
        f"across {len(result.tracks)} batches and {len(result.chains)} hash chains in {stats.seconds:.2f}s"
    )
    console.print(f"Reports: {run_dir / 'audit.html'}, {run_dir / 'audit.md'}, {run_dir / 'audit.json'}")
    return result.ok
