"""JSON log lines, the correlation id middleware and redaction of credentials."""

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from shared.settings import Settings
from shared.web.auth import Role, mint_token
from shared.web.logging import (
    CORRELATION_ID_HEADER,
    REDACTED,
    CorrelationIdMiddleware,
    JsonFormatter,
    RedactionFilter,
    Redactor,
    configure_logging,
    configured_secrets,
    correlation_headers,
    current_correlation_id,
    get_correlation_id,
    parse_level,
    reset_correlation_id,
    set_correlation_id,
)

SECRET = "logging-test-secret-0123456789-abcdefghijklmn"
OLD_SECRET = "logging-test-old-secret-9876543210-zyxwvuts"
SETTINGS = Settings(jwt_secret=SECRET, jwt_previous_secrets=[OLD_SECRET])
TOKEN = mint_token("li.wei", Role.operator, sites=["wh-1"], settings=SETTINGS)


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """configure_logging on a captured stream, undone afterwards so other tests keep their logging setup."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("warehouse", "DEBUG", settings=SETTINGS, stream=stream)
    yield stream
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


# --- JSON lines -------------------------------------------------------------------------------------------


def test_each_record_is_one_json_object_with_the_fixed_fields_and_extras(output: io.StringIO) -> None:
    logging.getLogger("aidtrail.test").info(
        "received %d boxes\nof masks", 40, extra={"batch_id": "b-1", "quantity": 40}
    )

    [line] = lines(output)
    assert line["level"] == "INFO"
    assert line["logger"] == "aidtrail.test"
    assert line["message"] == "received 40 boxes\nof masks"
    assert line["service"] == "warehouse"
    assert line["correlation_id"] is None
    assert line["batch_id"] == "b-1"
    assert line["quantity"] == 40
    assert line["ts"].endswith("+00:00")
    assert len(output.getvalue().splitlines()) == 1  # the newline in the message stayed inside the JSON


def test_exceptions_are_included_as_text(output: io.StringIO) -> None:
    try:
        raise RuntimeError("broker away")
    except RuntimeError:
        logging.getLogger("aidtrail.test").exception("relay failed")

    [line] = lines(output)
    assert "RuntimeError: broker away" in line["exception"]


def test_extras_that_clash_with_fixed_fields_do_not_overwrite_them(output: io.StringIO) -> None:
    logging.getLogger("aidtrail.test").warning("hello", extra={"service": "impostor", "level": "fake"})

    [line] = lines(output)
    assert line["service"] == "warehouse"
    assert line["extra_service"] == "impostor"
    assert line["level"] == "WARNING"
    assert line["extra_level"] == "fake"


def test_unserialisable_extras_become_text(output: io.StringIO) -> None:
    logging.getLogger("aidtrail.test").info("odd", extra={"when": object(), "ratio": float("nan")})

    [line] = lines(output)
    assert line["when"].startswith("<object object")
    assert line["ratio"] == "nan"


def test_configuring_twice_replaces_our_handler_instead_of_doubling_lines(output: io.StringIO) -> None:
    second = io.StringIO()
    configure_logging("warehouse", "INFO", settings=SETTINGS, stream=second)

    logging.getLogger("aidtrail.test").info("once")

    assert output.getvalue() == ""
    assert len(lines(second)) == 1


def test_level_is_applied_and_validated(output: io.StringIO) -> None:
    configure_logging("warehouse", "warning", settings=SETTINGS, stream=output)
    logging.getLogger("aidtrail.test").info("too quiet to print")

    assert output.getvalue() == ""
    assert parse_level("debug") == logging.DEBUG
    with pytest.raises(ValueError, match="AIDTRAIL_LOG_LEVEL"):
        parse_level("chatty")


# --- correlation id ---------------------------------------------------------------------------------------


def test_correlation_id_helpers() -> None:
    assert current_correlation_id() is None
    assert correlation_headers() == {}
    fresh = get_correlation_id()
    assert len(fresh) == 32
    assert get_correlation_id() != fresh  # outside a request each call starts its own trail

    token = set_correlation_id("corr-1")
    try:
        assert get_correlation_id() == "corr-1"
        assert correlation_headers() == {CORRELATION_ID_HEADER: "corr-1"}
    finally:
        reset_correlation_id(token)
    assert current_correlation_id() is None


def build_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(CorrelationIdMiddleware)

    @app.get("/echo")
    async def echo() -> dict[str, str | None]:
        logging.getLogger("aidtrail.route").info("handling echo")
        return {"correlation_id": current_correlation_id()}

    return app


async def get_echo(headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=build_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://aidtrail.test") as client:
        return await client.get("/echo", headers=headers)


async def test_middleware_uses_the_callers_id_in_logs_and_response(output: io.StringIO) -> None:
    response = await get_echo({CORRELATION_ID_HEADER: "pledge-42.a"})

    assert response.headers[CORRELATION_ID_HEADER] == "pledge-42.a"
    assert response.json() == {"correlation_id": "pledge-42.a"}
    route_lines = [line for line in lines(output) if line["logger"] == "aidtrail.route"]
    assert [line["correlation_id"] for line in route_lines] == ["pledge-42.a"]
    assert current_correlation_id() is None  # the id does not leak out of the request


async def test_middleware_makes_an_id_when_the_caller_sends_none() -> None:
    response = await get_echo()

    made_up = response.headers[CORRELATION_ID_HEADER]
    assert len(made_up) == 32
    assert int(made_up, 16) >= 0
    assert response.json() == {"correlation_id": made_up}


@pytest.mark.parametrize("unsafe", ["has spaces", "x" * 65, 'quote"and{brace}'])
async def test_middleware_replaces_ids_that_could_forge_log_lines(unsafe: str) -> None:
    response = await get_echo({CORRELATION_ID_HEADER: unsafe})

    assert response.headers[CORRELATION_ID_HEADER] != unsafe
    assert len(response.headers[CORRELATION_ID_HEADER]) == 32


async def test_middleware_passes_other_scopes_through_untouched() -> None:
    seen: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])
        assert current_correlation_id() is None

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        return None

    await CorrelationIdMiddleware(inner)({"type": "lifespan"}, receive, send)

    assert seen == ["lifespan"]


# --- redaction --------------------------------------------------------------------------------------------


def test_configured_secrets_cover_jwt_kafka_and_database_passwords() -> None:
    settings = Settings(
        jwt_secret=SECRET,
        jwt_previous_secrets=[OLD_SECRET],
        kafka_sasl_password="kafka-pass-123",
        database_url="postgresql+asyncpg://aid:db-pass-456@db/aidtrail",
    )

    assert configured_secrets(settings) == [SECRET, OLD_SECRET, "kafka-pass-123", "db-pass-456"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"verifying with {SECRET}", f"verifying with {REDACTED}"),
        (f"old key {OLD_SECRET} still accepted", f"old key {REDACTED} still accepted"),
        (f"Authorization: Bearer {TOKEN}", f"Authorization: {REDACTED}"),
        (f'"Authorization": "Bearer {TOKEN}"', f'"Authorization": "{REDACTED}"'),
        (f"[(b'authorization', b'Bearer {TOKEN}')]", f"[(b'authorization', b'{REDACTED}')]"),
        (f"token={TOKEN} next", f"token={REDACTED} next"),
        ("Authorization: Basic bGk6d2VpOnBhc3N3b3Jk", f"Authorization: {REDACTED}"),
        ("retrying with bearer some-opaque-credential", f"retrying with bearer {REDACTED}"),
    ],
)
def test_redactor_removes_credentials(text: str, expected: str) -> None:
    assert Redactor([SECRET, OLD_SECRET]).redact(text) == expected


def test_redactor_keeps_ordinary_dotted_text() -> None:
    text = "shared.web.auth 1.2.3 aidtrail.batch-events wh-wuhan-1"

    assert Redactor([SECRET]).redact(text) == text


def test_redactor_keeps_the_rest_of_a_header_listing() -> None:
    redacted = Redactor().redact(f"headers={{'authorization': 'Bearer {TOKEN}', 'accept': 'json'}}")

    assert redacted == f"headers={{'authorization': '{REDACTED}', 'accept': 'json'}}"


def test_log_lines_never_contain_secrets_or_tokens(output: io.StringIO) -> None:
    log = logging.getLogger("aidtrail.test")
    log.info("configured secret %s", SECRET)
    log.warning("request headers", extra={"headers": {"Authorization": f"Bearer {TOKEN}", "accept": "json"}})
    log.info("token extra", extra={"token": "opaque", "note": f"old {OLD_SECRET}", "raw": TOKEN.encode()})
    try:
        raise ValueError(f"could not verify {TOKEN} with {SECRET}")
    except ValueError:
        log.exception("verification crashed")

    text = output.getvalue()
    for sensitive in (SECRET, OLD_SECRET, TOKEN, "opaque"):
        assert sensitive not in text
    parsed = lines(output)
    assert len(parsed) == 4
    assert parsed[1]["headers"] == {"Authorization": REDACTED, "accept": "json"}
    assert parsed[2]["token"] == REDACTED
    assert REDACTED in parsed[3]["exception"]


def test_redaction_filter_protects_plain_text_formatters_too() -> None:
    """uvicorn or a developer's handler may format records its own way; the filter still scrubs them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactionFilter(Redactor([SECRET])))
    log = logging.getLogger("aidtrail.plain")
    log.addHandler(handler)
    try:
        log.error("secret=%s header=%s", SECRET, f"Authorization: Bearer {TOKEN}")
        try:
            raise KeyError(SECRET)
        except KeyError:
            log.exception("lookup failed")
    finally:
        log.removeHandler(handler)

    text = stream.getvalue()
    assert SECRET not in text
    assert TOKEN not in text
    assert text.startswith(f"ERROR secret={REDACTED} header=Authorization: {REDACTED}")
    assert "KeyError" in text


def test_json_formatter_redacts_without_the_filter() -> None:
    record = logging.LogRecord("aidtrail.test", logging.INFO, __file__, 1, "using %s", (SECRET,), None)

    line = json.loads(JsonFormatter("pledge", Redactor([SECRET])).format(record))

    assert line["message"] == f"using {REDACTED}"
    assert line["service"] == "pledge"
