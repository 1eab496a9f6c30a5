"""Request limits: refuse oversized, non-JSON, malformed or absurdly nested bodies before any route sees them.

Why a middleware and not per-route checks: every write route of every service takes a JSON body, and each of
these refusals must happen before the body is parsed (a 50 MiB body is a memory problem; 100 000 nested brackets
are a recursion problem) and before anything is written. One gate in front of all routes also means one wording:
each refusal is a 4xx in the services' `{"error": {"code", "message", ...}}` shape that says what is wrong and
how to fix it.

Limits are set with environment variables (the same `AIDTRAIL_` prefix as `shared.settings`):

* `AIDTRAIL_MAX_BODY_BYTES` (default 1 MiB): larger bodies get 413. A declared `Content-Length` over the limit
  is refused without reading a byte; a chunked body is counted as it arrives and cut off at the limit.
* `AIDTRAIL_MAX_JSON_DEPTH` (default 32): JSON nested deeper gets 422. The services' bodies nest four levels.

A non-empty body must be JSON (`Content-Type: application/json` or `application/*+json`, else 415) and must
parse as strict JSON (RFC 8259: no NaN, no trailing commas, no lone UTF-16 surrogates, which a database would
refuse to store; else 422 naming the line and column). Neither the body nor the URL may carry a NUL character
(U+0000): PostgreSQL cannot store it in text, so it would otherwise fail as a 500 there and pass on SQLite.
"""

from __future__ import annotations

import re
from email.message import Message as MimeMessage
from typing import Any, Final
from urllib.parse import unquote_to_bytes

import orjson
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.web.errors import error_body

MIB: Final = 1024 * 1024
DEFAULT_MAX_BODY_BYTES: Final = MIB
DEFAULT_MAX_JSON_DEPTH: Final = 32
JSON_EXAMPLE: Final = "Content-Type: application/json"

_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # the "unrolled loop" form: fast on long text
_NOT_BRACKETS: Final = bytes(byte for byte in range(256) if byte not in b"[]{}")
_INNERMOST_PAIR: Final = re.compile(rb"\[\]|\{\}")
_BRACKET_RUN: Final = re.compile(rb"[\[{]+|[\]}]+")
_OPENERS: Final = b"[{"
PEEL_PASSES: Final = 2
# A JSON `\u0000` escape that is not itself escaped (`\\u0000` is a backslash followed by the text "u0000").
_NUL_ESCAPE: Final = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
NUL_HINT: Final = (
    "text may not contain the NUL character (U+0000): PostgreSQL cannot store it; remove it and send again"
)


class LimitSettings(BaseSettings):
    """Read separately from `shared.settings.Settings` so the limits travel with this module, on the same prefix."""

    model_config = SettingsConfigDict(env_prefix="AIDTRAIL_", extra="ignore")

    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024, le=256 * MIB)
    max_json_depth: int = Field(default=DEFAULT_MAX_JSON_DEPTH, ge=4, le=1000)


class RequestRefused(Exception):
    """A refusal with its status and body; raised while reading the request, rendered by the middleware."""

    def __init__(self, status_code: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = error_body(code, message, **details)


# --- the checks, each small and testable on its own --------------------------------------------------------


def describe_size(size: int) -> str:
    return f"{size / MIB:.1f} MiB" if size >= MIB else f"{size / 1024:.0f} KiB" if size >= 1024 else f"{size} bytes"


def too_large(limit: int, seen: str) -> RequestRefused:
    return RequestRefused(
        413,
        "body_too_large",
        f"the request body is {seen}, over this service's limit of {describe_size(limit)} ({limit} bytes); "
        "send less per request, e.g. split a pledge into several",
        limit_bytes=limit,
    )


def check_declared_length(headers: dict[bytes, bytes], limit: int) -> None:
    """A declared length over the limit is refused before a byte is read; a malformed one is the client's error."""
    raw = headers.get(b"content-length")
    if raw is None:
        return
    try:
        declared = int(raw)
    except ValueError:
        raise RequestRefused(
            400, "bad_content_length", "the Content-Length header is not a number; let your HTTP client set it"
        ) from None
    if declared > limit:
        raise too_large(limit, f"declared as {declared} bytes")


def check_content_type(headers: dict[bytes, bytes]) -> None:
    """Every body the services take is JSON; saying so up front beats a confusing field-level error later."""
    raw = headers.get(b"content-type")
    if raw is None:
        raise RequestRefused(
            415, "unsupported_media_type", f"the request has a body but no Content-Type; send {JSON_EXAMPLE}"
        )
    mime = MimeMessage()
    mime["content-type"] = raw.decode("latin-1")
    subtype = mime.get_content_subtype()
    if mime.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json")):
        return
    shown = raw.decode("latin-1")[:80]
    raise RequestRefused(
        415,
        "unsupported_media_type",
        f"the body is sent as {shown!r}, but this API takes JSON only; send {JSON_EXAMPLE}",
    )


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """True if the brackets nest deeper than `limit`, found without recursion (that is the attack being refused).

    Strings are blanked first, so brackets inside them do not count. The deepest point of any nesting lies inside
    an innermost `[]` or `{}`, so peeling those off (a C-speed regex pass) lowers the depth by exactly one and
    shrinks common shapes (lists of small objects) to almost nothing; what is left is scanned run by run, with an
    early exit, so a 1 MiB body of brackets costs milliseconds. Unbalanced brackets are left to the JSON parser,
    which reports them with a position.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    brackets = _STRING.sub(b'""', body).translate(None, _NOT_BRACKETS)
    for _pass in range(PEEL_PASSES):
        brackets = _INNERMOST_PAIR.sub(b"", brackets)
    depth, deepest_allowed = 0, limit - PEEL_PASSES
    for run in _BRACKET_RUN.finditer(brackets):
        if brackets[run.start()] in _OPENERS:
            depth += run.end() - run.start()
            if depth > deepest_allowed:
                return True
        else:
            depth -= run.end() - run.start()
    return False


def check_url(scope: Scope) -> None:
    """A NUL in the path or query would reach a database query as text, where PostgreSQL refuses it with a 500."""
    query = unquote_to_bytes(scope.get("query_string", b""))
    if "\x00" in scope.get("path", "") or b"\x00" in query:
        raise RequestRefused(422, "invalid_text", f"the URL holds a NUL character (%00); {NUL_HINT}")


def check_json(body: bytes, max_depth: int) -> None:
    if json_depth_exceeds(body, max_depth):
        raise RequestRefused(
            422,
            "json_too_deep",
            f"the JSON body nests deeper than {max_depth} levels; this API's bodies nest a few levels at most, "
            "so send the documented shape (see /docs)",
            max_depth=max_depth,
        )
    if _NUL_ESCAPE.search(body):
        raise RequestRefused(422, "invalid_text", f"the body holds a \\u0000 escape; {NUL_HINT}")
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestRefused(
            422,
            "invalid_json",
            f"the body is not valid JSON ({exc}); send one JSON object as documented in /docs, "
            "with double-quoted names and no trailing commas, NaN or comments",
        ) from None


# --- the middleware ----------------------------------------------------------------------------------------


class RequestLimitsMiddleware:
    """Pure ASGI, so it can stop reading an oversized body mid-stream and replay an accepted one to the route."""

    def __init__(self, app: ASGIApp, max_body_bytes: int | None = None, max_json_depth: int | None = None) -> None:
        settings = LimitSettings()
        self.app = app
        self.max_body_bytes = max_body_bytes or settings.max_body_bytes
        self.max_json_depth = max_json_depth or settings.max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read_checked_body(scope, receive)
        except RequestRefused as refused:
            await JSONResponse(refused.body, status_code=refused.status_code)(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_checked_body(self, scope: Scope, receive: Receive) -> bytes:
        headers = {key.lower(): value for key, value in scope.get("headers", [])}
        check_url(scope)
        check_declared_length(headers, self.max_body_bytes)
        body = await read_body(receive, self.max_body_bytes)
        if body:
            check_content_type(headers)
            check_json(body, self.max_json_depth)
        return body


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole body, or a 413 as soon as it passes `limit`: never more than `limit` bytes held in memory."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit, f"over {size} bytes (still arriving)")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """Hand the route the body already read, in one message; later calls wait on the client (e.g. disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed
