"""`aidtrail token`: mint a bearer token for a person acting in a role.

Only the token goes to stdout, so `TOKEN=$(aidtrail token --role operator --sub li.wei --site wh-wuhan-1)`
captures it cleanly; warnings go to stderr. The token is signed with AIDTRAIL_JWT_SECRET from the environment,
the same setting the services verify with. There is deliberately no --secret option: a secret typed on the
command line ends up in shell history and in `ps` output.
"""

from __future__ import annotations

from typing import Annotated

import typer

from shared.web.auth import DEFAULT_TTL_SECONDS, SITE_SCOPED_ROLES, Role, mint_token, parse_role


def token(
    role: Annotated[
        str,
        typer.Option("--role", help=f"One of: {', '.join(r.value for r in Role)}.", show_default=False),
    ],
    subject: Annotated[
        str,
        typer.Option("--subject", "--sub", help="Who acts, e.g. li.wei; recorded on every event.", show_default=False),
    ],
    site: Annotated[
        list[str] | None,
        typer.Option("--site", help="A site this operator or dispatcher works at; repeat for several."),
    ] = None,
    recipient: Annotated[
        str | None, typer.Option("--recipient", help="The recipient (hospital) id, for recipient_staff.")
    ] = None,
    donor: Annotated[str | None, typer.Option("--donor", help="The donor id, for role donor.")] = None,
    ttl: Annotated[int, typer.Option("--ttl", min=1, help="Lifetime in seconds.")] = DEFAULT_TTL_SECONDS,
) -> None:
    """Mint a bearer token; only the token is printed, so it can be captured with $(...)."""
    parsed_role = _role_option(role)
    sites = site or []
    for warning in scope_warnings(parsed_role, sites, recipient, donor):
        typer.echo(f"warning: {warning}", err=True)
    try:
        minted = mint_token(subject, parsed_role, sites=sites, recipient_id=recipient, donor_id=donor, ttl_seconds=ttl)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(minted)


def _role_option(value: str) -> Role:
    try:
        return parse_role(value.strip())
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--role") from None


def scope_warnings(role: Role, sites: list[str], recipient: str | None, donor: str | None) -> list[str]:
    """A token without its scope is valid but refused by every scoped route; say so now, not at the first 403."""
    warnings = []
    if role in SITE_SCOPED_ROLES and not sites:
        warnings.append(f"a {role} token without --site will be refused by every site-scoped route")
    if role is Role.recipient_staff and not recipient:
        warnings.append("a recipient_staff token without --recipient will be refused by every recipient route")
    if role is Role.donor and not donor:
        warnings.append("a donor token without --donor will be refused by every donor-scoped route")
    return warnings
