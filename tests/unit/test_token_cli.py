"""The `aidtrail token` command: it prints only tokens the services accept, scoped as asked."""

from typing import Any

import jwt
import pytest
import typer
from typer.testing import CliRunner

from shared.cli.token_commands import token as token_command
from shared.settings import get_settings
from shared.web.auth import Role, decode_token

# --- aidtrail token ---------------------------------------------------------------------------------------


def token_cli() -> typer.Typer:
    app = typer.Typer()
    app.command()(token_command)
    return app


def run_token(*args: str) -> Any:
    return CliRunner().invoke(token_cli(), list(args))


def test_cli_prints_only_a_token_that_the_services_accept() -> None:
    result = run_token("--role", "operator", "--sub", "li.wei", "--site", "wh-wuhan-1", "--site", "wh-xian-2")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    principal = decode_token(lines[0], get_settings())
    assert principal.actor == "operator:li.wei"
    assert principal.sites == {"wh-wuhan-1", "wh-xian-2"}
    assert result.stderr == ""


def test_cli_scopes_recipient_staff_and_donors() -> None:
    nurse = run_token("--role", "recipient_staff", "--subject", "chen", "--recipient", "hosp-7")
    donor = run_token("--role", "donor", "--sub", "acme", "--donor", "donor-3")

    assert decode_token(nurse.stdout.strip(), get_settings()).recipient_id == "hosp-7"
    assert decode_token(donor.stdout.strip(), get_settings()).donor_id == "donor-3"


def test_cli_ttl_sets_the_lifetime() -> None:
    result = run_token("--role", "auditor", "--sub", "eve", "--ttl", "90")

    claims = jwt.decode(result.stdout.strip(), options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 90


def test_cli_default_ttl_is_twelve_hours() -> None:
    result = run_token("--role", "admin", "--sub", "root")

    claims = jwt.decode(result.stdout.strip(), options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 12 * 60 * 60


def test_cli_unknown_role_lists_the_valid_ones() -> None:
    result = run_token("--role", "boss", "--sub", "li.wei")

    assert result.exit_code == 2
    assert result.stdout == ""
    flat = " ".join(result.stderr.split())
    assert "unknown role 'boss'" in flat
    for role in Role:
        assert role.value in flat


def test_cli_warns_on_stderr_when_the_scope_is_missing() -> None:
    result = run_token("--role", "dispatcher", "--sub", "zhao")

    assert result.exit_code == 0
    assert "without --site" in result.stderr
    assert result.stdout.count(".") == 2  # stdout still holds nothing but the token


@pytest.mark.parametrize(
    "args",
    [
        ("--sub", "li.wei"),
        ("--role", "operator"),
        ("--role", "operator", "--sub", "li.wei", "--ttl", "0"),
    ],
)
def test_cli_refuses_incomplete_or_invalid_options(args: tuple[str, ...]) -> None:
    result = run_token(*args)

    assert result.exit_code == 2
    assert result.stdout == ""
