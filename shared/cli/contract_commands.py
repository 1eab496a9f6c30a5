"""`aidtrail contract ...`: generate the AsyncAPI document of the topics, and check it with AsyncAPI's own CLI.

    aidtrail contract asyncapi --out docs/asyncapi.yaml   # regenerate the committed copy
    aidtrail contract asyncapi --check                    # exit 1 when docs/asyncapi.yaml is stale
    aidtrail contract install-cli                         # npm-install the pinned AsyncAPI CLI into .aidtrail/node
    aidtrail contract validate                            # run `asyncapi validate` on docs/asyncapi.yaml

Also runnable as `python -m shared.cli.contract_commands ...`, which is how dev.sh calls it.
"""

from __future__ import annotations

import subprocess
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from shared.contract import validator
from shared.contract.asyncapi import build_document
from shared.contract.render import DOCS_COPY, stale_reason, to_json, to_yaml

contract_app = typer.Typer(help="The event contract (AsyncAPI) of the Kafka topics.", no_args_is_help=True)


class OutputFormat(StrEnum):
    yaml = "yaml"
    json = "json"


@contract_app.command("asyncapi", help="Generate the AsyncAPI 3.0 document from the event models.")
def asyncapi(
    out: Annotated[Path | None, typer.Option("--out", help="Write here instead of stdout.")] = None,
    output_format: Annotated[OutputFormat, typer.Option("--format", help="yaml or json.")] = OutputFormat.yaml,
    check: Annotated[bool, typer.Option("--check", help="Only check that docs/asyncapi.yaml is current.")] = False,
) -> None:
    if check:
        _check_current(out or DOCS_COPY)
        return
    document = build_document()
    text = to_yaml(document) if output_format is OutputFormat.yaml else to_json(document).decode() + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    changed = not out.is_file() or out.read_text(encoding="utf-8") != text
    out.write_text(text, encoding="utf-8")
    typer.echo(f"{out}: {'updated' if changed else 'already current'}")


def _check_current(path: Path) -> None:
    reason = stale_reason(path)
    if reason:
        typer.echo(reason, err=True)
        raise typer.Exit(1)
    typer.echo(f"{path}: current")


@contract_app.command("install-cli", help=f"Install {validator.CLI_PACKAGE}@{validator.CLI_VERSION} locally.")
def install_cli() -> None:
    try:
        installed = validator.ensure_installed()
    except (validator.ValidatorMissing, subprocess.CalledProcessError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    state = "installed" if installed else "already installed"
    typer.echo(f"{validator.CLI_PACKAGE}@{validator.CLI_VERSION} {state} in {validator.NODE_PREFIX}")


@contract_app.command("validate", help="Validate an AsyncAPI document with the AsyncAPI CLI.")
def validate(path: Annotated[Path, typer.Argument(help="The document.")] = DOCS_COPY) -> None:
    try:
        result = validator.validate(path.resolve())
    except validator.ValidatorMissing as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(result.output)
    if not result.ok:
        raise typer.Exit(1)


if __name__ == "__main__":
    contract_app()
