"""The `aidtrail` command: broker, services, tokens, demo and audit, one entry point for every job."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import typer

from shared.cli.audit_commands import audit_app
from shared.cli.contract_commands import contract_app
from shared.cli.deadletter_commands import deadletter_app
from shared.cli.demo_commands import demo
from shared.cli.kafka_commands import kafka_app
from shared.cli.token_commands import token
from shared.settings import REPO_ROOT

SERVICES = ("pledge", "warehouse", "dispatch", "recipient", "audit")
DEFAULT_PORTS = {"pledge": 8001, "warehouse": 8002, "dispatch": 8003, "recipient": 8004, "audit": 8005}

app = typer.Typer(help="aidtrail: follow donated relief materials from pledge to signed receipt.", no_args_is_help=True)
app.add_typer(kafka_app, name="kafka", help="Run the local Apache Kafka broker (KRaft).")
app.add_typer(audit_app, name="audit", help="Replay the event log read-only: checks, reports, EPCIS export.")
app.add_typer(deadletter_app, name="deadletter", help="Inspect, fix and replay events parked on the dead-letter path.")
app.add_typer(contract_app, name="contract", help="The event contract (AsyncAPI 3.0), generated from the models.")
app.command("token", help="Mint a development bearer token.")(token)
app.command("demo", help="Run the Hubei 2020 scenario from pledge to audited delivery.")(demo)


@app.command(help="Regenerate the generated sections of README.md (event catalogue, state table).")
def docs(readme: Path = typer.Option(REPO_ROOT / "README.md")) -> None:
    from shared.events.docs import update_readme

    changed = update_readme(readme)
    typer.echo(f"{readme}: {'updated' if changed else 'already current'}")


@app.command(help="Run one service with uvicorn.")
def serve(
    service: str = typer.Argument(..., help=f"One of: {', '.join(SERVICES)}"),
    port: int | None = typer.Option(None, help="Port; defaults to the service's usual port."),
    host: str = typer.Option("127.0.0.1"),
) -> None:
    import uvicorn

    if service not in SERVICES:
        raise typer.BadParameter(f"unknown service {service!r}; choose one of {', '.join(SERVICES)}")
    os.environ["AIDTRAIL_SERVICE"] = service
    module = importlib.import_module(f"services.{service}.bootstrap")
    uvicorn.run(module.create(), host=host, port=port or DEFAULT_PORTS[service], log_config=None)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
