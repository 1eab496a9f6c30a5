"""`aidtrail deadletter ...`: inspect, fix, replay and discard the events a service's consumers parked.

It talks to the service's admin routes (`/admin/parked...`) over HTTP with a bearer token, so it works against
any replica of a running service and every change is recorded under the token's actor. Looking (list, show,
relay) needs an auditor or admin token; changing (fix, replay, discard) needs an admin token.

Exit codes: 0 done (for replay: the stream flows again), 1 replay left events parked, 2 the request was refused
or the service could not be reached.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shared.devstack.processes import DEFAULT_PORTS

EXIT_OK, EXIT_STILL_PARKED, EXIT_ERROR = 0, 1, 2
TIMEOUT_SECONDS = 30.0

deadletter_app = typer.Typer(
    no_args_is_help=True,
    help="Inspect, fix, replay and discard parked events (a service's dead letters).",
)
out = Console()
err = Console(stderr=True)

ServiceOption = Annotated[
    str, typer.Option("--service", "-s", help=f"Service to talk to: {', '.join(DEFAULT_PORTS)} (its usual port).")
]
UrlOption = Annotated[
    str | None,
    typer.Option("--url", envvar="AIDTRAIL_SERVICE_URL", help="Base URL of the service; overrides --service."),
]
TokenOption = Annotated[
    str,
    typer.Option(
        "--token",
        envvar="AIDTRAIL_TOKEN",
        show_default=False,
        help="Bearer token: `export AIDTRAIL_TOKEN=$(aidtrail token --role admin --sub you)`.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the service's JSON answer as it is.")]


class _Service:
    """One service's admin routes; a refusal or an unreachable service ends the command with exit code 2."""

    def __init__(self, service: str, url: str | None, token: str):
        if url is None and service not in DEFAULT_PORTS:
            raise typer.BadParameter(f"unknown service {service!r}; choose one of {', '.join(DEFAULT_PORTS)}")
        self.base = (url or f"http://127.0.0.1:{DEFAULT_PORTS[service]}").rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        try:
            response = httpx.request(
                method,
                self.base + path,
                json=body,
                params={k: v for k, v in (params or {}).items() if v is not None},
                headers=self.headers,
                timeout=TIMEOUT_SECONDS,
            )
        except httpx.HTTPError as exc:
            err.print(f"[red]cannot reach {escape(self.base)}:[/] {escape(str(exc) or type(exc).__name__)}")
            raise typer.Exit(EXIT_ERROR) from None
        if response.status_code >= 400:
            err.print(f"[red]{method} {escape(path)} refused ({response.status_code}):[/] {escape(_message(response))}")
            raise typer.Exit(EXIT_ERROR)
        return response.json()


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and "message" in error:
        return str(error["message"])
    return json.dumps(body)[:500]


def _print_json(data: Any) -> None:
    out.print_json(json.dumps(data))


@deadletter_app.command("list")
def list_command(
    token: TokenOption,
    stream: Annotated[str | None, typer.Option("--stream", help="Only this stream (batch id).")] = None,
    consumer: Annotated[str | None, typer.Option("--consumer", help="Only this consumer.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 50,
    offset: Annotated[int, typer.Option("--offset", min=0)] = 0,
    service: ServiceOption = "warehouse",
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Parked events, in the order a replay would apply them."""
    params = {"stream_id": stream, "consumer": consumer, "limit": limit, "offset": offset}
    page = _Service(service, url, token).call("GET", "/admin/parked", params=params)
    if as_json:
        _print_json(page)
        return
    table = Table("id", "stream", "type", "origin", "parked at", "reason", title=f"{page['total']} parked")
    for item in page["items"]:
        origin = f"{item['topic']}/{item['partition']}/{item['offset']}"
        kind = item["event_type"] or "-"
        table.add_row(str(item["id"]), item["stream_id"], kind, origin, item["parked_at"], escape(item["reason"]))
    out.print(table)
    if page["next_offset"] is not None:
        out.print(f"more: --offset {page['next_offset']}")


@deadletter_app.command("show")
def show_command(
    parked_id: Annotated[int, typer.Argument(help="The parked event's id, from `list`.")],
    token: TokenOption,
    service: ServiceOption = "warehouse",
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """One parked event: where it came from, why it is parked, its headers, payload and history."""
    detail = _Service(service, url, token).call("GET", f"/admin/parked/{parked_id}")
    if as_json:
        _print_json(detail)
        return
    out.print(f"[bold]parked event {detail['id']}[/] of stream {escape(detail['stream_id'])} ({detail['consumer']})")
    out.print(f"origin: {detail['topic']}/{detail['partition']}/{detail['offset']}, parked at {detail['parked_at']}")
    out.print(f"reason: [red]{escape(detail['reason'])}[/]")
    headers = Table("header", "value")
    for name, value in detail["headers"]:
        headers.add_row(escape(name), escape(value))
    out.print(headers)
    if detail["value_json"] is not None:
        _print_json(detail["value_json"])
    else:
        out.print(f"payload (not JSON): {escape(detail['value_text'] or '(none)')}")
    for entry in detail["history"]:
        out.print(f"{entry['at']} {entry['action']} by {escape(entry['actor'])}: {escape(entry['note'])}")


def _header_changes(set_headers: list[str], drop_headers: list[str]) -> dict[str, str | None]:
    changes: dict[str, str | None] = {}
    for text in set_headers:
        name, sep, value = text.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{text!r} must look like NAME=VALUE", param_hint="--header")
        changes[name] = value
    for name in drop_headers:
        changes[name] = None
    return changes


def _payload(value: str | None, value_file: Path | None) -> dict[str, Any]:
    """The corrected payload as JSON if it parses (the usual case), else as raw text."""
    if value is not None and value_file is not None:
        raise typer.BadParameter("give --value or --value-file, not both")
    text = value_file.read_text() if value_file is not None else value
    if text is None:
        return {}
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return {"value_text": text}
    return {"value": parsed} if isinstance(parsed, dict) else {"value_text": text}


@deadletter_app.command("fix")
def fix_command(
    parked_id: Annotated[int, typer.Argument(help="The parked event's id, from `list`.")],
    token: TokenOption,
    value: Annotated[str | None, typer.Option("--value", help="The corrected payload (JSON).")] = None,
    value_file: Annotated[
        Path | None, typer.Option("--value-file", exists=True, dir_okay=False, help="Read it from this file.")
    ] = None,
    set_headers: Annotated[list[str] | None, typer.Option("--header", help="Set a header: NAME=VALUE.")] = None,
    drop_headers: Annotated[list[str] | None, typer.Option("--drop-header", help="Remove a header.")] = None,
    note: Annotated[str, typer.Option("--note", help="Why; kept in the action log.")] = "",
    service: ServiceOption = "warehouse",
    url: UrlOption = None,
) -> None:
    """Correct the parked copy of a record (payload and/or headers); nothing is applied until `replay`."""
    body = {**_payload(value, value_file), "headers": _header_changes(set_headers or [], drop_headers or [])}
    if "value" not in body and "value_text" not in body and not body["headers"]:
        raise typer.BadParameter("nothing to fix: give --value, --value-file, --header or --drop-header")
    detail = _Service(service, url, token).call("POST", f"/admin/parked/{parked_id}/fix", body={**body, "note": note})
    out.print(f"parked event {detail['id']} fixed; apply it with: aidtrail deadletter replay {detail['stream_id']}")


@deadletter_app.command("replay")
def replay_command(
    stream_id: Annotated[str, typer.Argument(help="The stream (batch id) whose parked events to apply.")],
    token: TokenOption,
    consumer: Annotated[str | None, typer.Option("--consumer", help="Only this consumer's parked events.")] = None,
    service: ServiceOption = "warehouse",
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Apply the stream's parked events in order; exit 1 if some still fail (they stay parked, with the reason)."""
    results = _Service(service, url, token).call(
        "POST", "/admin/parked/replay", body={"stream_id": stream_id, "consumer": consumer}
    )
    if as_json:
        _print_json(results)
    else:
        _print_replay(results)
    raise typer.Exit(EXIT_OK if all(result["unparked"] for result in results) else EXIT_STILL_PARKED)


def _print_replay(results: list[dict[str, Any]]) -> None:
    for result in results:
        applied, duplicates = len(result["applied"]), len(result["duplicates"])
        out.print(f"{result['consumer']}: {applied} applied, {duplicates} duplicate(s) dropped")
        for still in result["still_parked"]:
            out.print(f"  still parked {still['id']}: [red]{escape(still['reason'])}[/]")


@deadletter_app.command("discard")
def discard_command(
    parked_id: Annotated[int, typer.Argument(help="The parked event's id, from `list`.")],
    token: TokenOption,
    reason: Annotated[str, typer.Option("--reason", show_default=False, help="Why it is given up (required).")],
    service: ServiceOption = "warehouse",
    url: UrlOption = None,
) -> None:
    """Give up on one parked event; the reason and the record are kept in the action log."""
    answer = _Service(service, url, token).call("POST", f"/admin/parked/{parked_id}/discard", body={"reason": reason})
    remaining = answer["still_parked_in_stream"]
    stream = answer["discarded"]["stream_id"]
    out.print(f"parked event {parked_id} discarded; {remaining} event(s) of {escape(stream)} still parked")
    if remaining:
        out.print(f"apply them with: aidtrail deadletter replay {escape(stream)}")


@deadletter_app.command("relay")
def relay_command(
    token: TokenOption, service: ServiceOption = "warehouse", url: UrlOption = None, as_json: JsonOption = False
) -> None:
    """Which replica's outbox relay holds the lease and publishes."""
    status = _Service(service, url, token).call("GET", "/admin/relay")
    if as_json:
        _print_json(status)
        return
    here = "this replica" if status["held_here"] else "another replica" if status["owner"] else "nobody yet"
    out.print(f"lease {status['name']}: held by {escape(str(status['owner']))} ({here}), epoch {status['epoch']}")
    out.print(f"expires in {status['expires_in']:.1f}s" if status["expires_in"] is not None else "never taken")
