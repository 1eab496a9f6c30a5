"""Hostile and careless requests against real service apps, on the real broker, on SQLite and on PostgreSQL.

Each refusal must be a 4xx whose `{"error": {"code", "message"}}` says what is wrong and how to fix it, never a
500, and must leave nothing behind: no event, no outbox row, no idempotency record. Text that is merely unusual
(any script, emoji, SQL or HTML) is not refused: it is stored verbatim, returned identically, and harms nothing.

One pledge service and one recipient service run per backend for the whole module (their startup is the slow
part), so every test uses ids of its own and compares counts before and after, never absolute counts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
import sqlalchemy as sa

from services.pledge.tables import donors
from shared.events.batch_events import MAX_QUANTITY, Unit
from shared.store.schema import events, idempotency_keys, outbox
from tests.fixtures.databases import fresh_postgres_url, sqlite_url
from tests.harness import ServiceHandle, running_service, service_settings

pytestmark = pytest.mark.kafka

MIB = 1024 * 1024
LINE = {"item": "n95-mask", "quantity": 100, "unit": "piece", "warehouse_id": "wh-wuhan-1"}
HOSTILE_TEXT = [
    "小米集团 — 武汉金银潭医院",
    "مؤسسة الإغاثة الإنسانية",
    "🚚📦❤️‍🩹 masks for 👩‍⚕️🧑🏽‍⚕️",
    "שלום עליכם (right-to-left) ‮reversed‬",
    "Zoë, Åsa & Ñandú: e\u0301 n\u0303 (combining marks)",
    "Robert'); DROP TABLE donors;--",
    "'; DROP TABLE events; --",
    '" OR "1"="1',
    "<script>alert('x')</script>",
    "<img src=x onerror=alert(1)>",
    "{{7*7}} ${jndi:ldap://evil/x} %s%n%x",
    "../../../etc/passwd",
    'back\\slash "quotes" and \ttab',
]


# --- fixtures: one service per backend for the module ------------------------------------------------------


@asynccontextmanager
async def database(backend: str, directory: Path, name: str) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield sqlite_url(directory, f"{name}.db")
        return
    async with fresh_postgres_url() as url:
        yield url


@asynccontextmanager
async def service(
    name: str, backend: str, factory: pytest.TempPathFactory, kafka_bootstrap: str
) -> AsyncIterator[ServiceHandle]:
    from tests.harness import new_topic_prefix

    async with database(backend, factory.mktemp(name), name) as url:
        settings = service_settings(name, url, new_topic_prefix(), kafka_bootstrap)
        async with running_service(name, settings) as handle:
            yield handle


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest_asyncio.fixture(scope="module")
async def pledge(
    backend: str, tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str
) -> AsyncIterator[ServiceHandle]:
    async with service("pledge", backend, tmp_path_factory, kafka_bootstrap) as handle:
        yield handle


@pytest_asyncio.fixture(scope="module")
async def recipient(
    backend: str, tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str
) -> AsyncIterator[ServiceHandle]:
    async with service("recipient", backend, tmp_path_factory, kafka_bootstrap) as handle:
        yield handle


# --- helpers -------------------------------------------------------------------------------------------------


async def footprint(handle: ServiceHandle) -> tuple[int, ...]:
    """Everything a command leaves behind: events, outbox rows, stored idempotent answers."""
    async with handle.runtime.database.read() as conn:
        counts = []
        for table in (events, outbox, idempotency_keys):
            counts.append(int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar() or 0))
        return tuple(counts)


@asynccontextmanager
async def nothing_written(handle: ServiceHandle) -> AsyncIterator[None]:
    before = await footprint(handle)
    yield
    assert await footprint(handle) == before, "a refused request left something behind"


def refusal(response: httpx.Response, status: int, code: str, *words: str) -> str:
    """The refusal's message, after checking it is the documented shape, status and code, and names `words`."""
    assert response.status_code == status, f"expected {status} {code}, got {response.status_code}: {response.text}"
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code, error
    message: str = error["message"]
    for word in words:
        assert word in message, f"{word!r} missing from: {message}"
    return message


async def post_raw(handle: ServiceHandle, path: str, body: bytes, content_type: str | None = "application/json") -> Any:
    headers = {**handle.auth(), **({"Content-Type": content_type} if content_type else {})}
    return await handle.http.post(path, content=body, headers=headers)


def pledge_body(pledge_id: str, **line: Any) -> dict[str, Any]:
    return {"pledge_id": pledge_id, "donor_id": "bad-input-donor", "lines": [{**LINE, **line}]}


async def ensure_donor(pledge: ServiceHandle) -> None:
    if (await pledge.get("/donors/bad-input-donor")).status_code == 404:
        created = await pledge.post("/donors", json={"donor_id": "bad-input-donor", "name": "Bad Input Donor"})
        assert created.status_code == 201, created.text


# --- size, nesting, syntax, media type -----------------------------------------------------------------------


async def test_an_oversized_body_is_413_with_the_limit_and_writes_nothing(pledge: ServiceHandle) -> None:
    body = orjson.dumps({"donor_id": "huge", "name": "x" * (2 * MIB)})
    async with nothing_written(pledge):
        message = refusal(await post_raw(pledge, "/donors", body), 413, "body_too_large", "1.0 MiB", "send less")
    assert "1048576" in message


async def test_a_streamed_body_is_cut_off_at_the_limit(pledge: ServiceHandle) -> None:
    """No Content-Length to trust: the body is counted as it arrives and refused once past the limit."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(40):
            yield b"x" * 64 * 1024
        yield b'"}'

    headers = {**pledge.auth(), "Content-Type": "application/json"}
    async with nothing_written(pledge):
        response = await pledge.http.post("/donors", content=chunks(), headers=headers)
        refusal(response, 413, "body_too_large", "still arriving")


async def test_the_body_limit_is_configurable(
    tmp_path: Path, topic_prefix: str, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIDTRAIL_MAX_BODY_BYTES", "4096")
    settings = service_settings("pledge", sqlite_url(tmp_path), topic_prefix, kafka_bootstrap)
    async with running_service("pledge", settings) as small:
        padded = b'{"donor_id": "small", "name": "Small"' + b" " * 3000 + b"}"  # whitespace counts, fields do not
        fits = await post_raw(small, "/donors", padded)
        assert fits.status_code == 201, fits.text
        too_big = await post_raw(small, "/donors", padded.replace(b" " * 3000, b" " * 5000))
        refusal(too_big, 413, "body_too_large", "4 KiB (4096 bytes)")


@pytest.mark.parametrize("depth", [40, 10_000, 100_000])
async def test_deeply_nested_json_is_refused_without_recursing(pledge: ServiceHandle, depth: int) -> None:
    for opener, closer in ((b"[", b"]"), (b'{"a":', b"}")):
        body = b'{"name": ' + opener * depth + b"1" + closer * depth + b"}"
        async with nothing_written(pledge):
            refusal(await post_raw(pledge, "/donors", body), 422, "json_too_deep", "32 levels")


async def test_brackets_inside_strings_do_not_count_as_nesting(pledge: ServiceHandle) -> None:
    name = "[" * 100 + "{" * 100
    response = await pledge.post("/donors", json={"donor_id": "brackets", "name": name})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == name


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"name": "x",}', "trailing comma"),
        (b"{name: 'x'}", "line 1 column 2"),
        (b'{"name": "x"', "line 1"),
        (b'{"name": NaN}', "line 1 column 10"),
        (b'{"name": "\\ud800"}', "surrogate"),
        (b'{"name": "caf\xe9"}', "UTF-8"),
        (b'{"funds_amount": 1e400}', "infinity"),
    ],
)
async def test_malformed_json_is_422_naming_where(pledge: ServiceHandle, body: bytes, words: str) -> None:
    async with nothing_written(pledge):
        refusal(await post_raw(pledge, "/donors", body), 422, "invalid_json", words, "send one JSON object")


async def test_a_missing_body_is_422_naming_the_body(pledge: ServiceHandle) -> None:
    async with nothing_written(pledge):
        refusal(await post_raw(pledge, "/donors", b""), 422, "invalid_request", "body", "Field required")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", None])
async def test_a_body_that_is_not_sent_as_json_is_415(pledge: ServiceHandle, content_type: str | None) -> None:
    body = orjson.dumps({"donor_id": "ct", "name": "Content Type"})
    async with nothing_written(pledge):
        refusal(
            await post_raw(pledge, "/donors", body, content_type), 415, "unsupported_media_type", "application/json"
        )


async def test_json_with_a_charset_or_a_json_suffix_is_accepted(pledge: ServiceHandle) -> None:
    for donor_id, content_type in (("cs-1", "application/json; charset=utf-8"), ("cs-2", "application/vnd.api+json")):
        body = orjson.dumps({"donor_id": donor_id, "name": "Charset"})
        assert (await post_raw(pledge, "/donors", body, content_type)).status_code == 201


async def test_a_nul_character_is_refused_in_the_body_and_in_the_url(pledge: ServiceHandle) -> None:
    """PostgreSQL cannot store U+0000 in text; refusing it up front keeps both backends alike and 500-free."""
    async with nothing_written(pledge):
        refusal(await pledge.post("/donors", json={"name": "nul\u0000byte"}), 422, "invalid_text", "NUL")
        refusal(await pledge.get("/donors/a%00b"), 422, "invalid_text", "NUL")
        refusal(await pledge.get("/pledges", params={"donor_id": "a\u0000b"}), 422, "invalid_text", "NUL")
    escaped = await pledge.post("/donors", json={"donor_id": "nul-text", "name": "\\u0000 is only text here"})
    assert escaped.status_code == 201 and escaped.json()["name"] == "\\u0000 is only text here"


# --- field rules -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "words"),
    [
        (MAX_QUANTITY + 1, "less than or equal to 1000000000"),
        (10**30, "lines.0.quantity"),
        (0, "greater than 0"),
        (-5, "greater than 0"),
        (2.5, "lines.0.quantity"),
        ("many", "lines.0.quantity"),
    ],
)
async def test_impossible_quantities_are_422(pledge: ServiceHandle, quantity: Any, words: str) -> None:
    await ensure_donor(pledge)
    async with nothing_written(pledge):
        response = await pledge.post("/pledges", json=pledge_body("bad-quantity", quantity=quantity))
        refusal(response, 422, "invalid_request", words, "Fix these fields")


async def test_an_unknown_unit_is_422_listing_the_allowed_ones(pledge: ServiceHandle) -> None:
    await ensure_donor(pledge)
    async with nothing_written(pledge):
        message = refusal(
            await pledge.post("/pledges", json=pledge_body("bad-unit", unit="barrel")), 422, "invalid_request"
        )
    assert all(f"'{unit.value}'" in message for unit in Unit), message


@pytest.mark.parametrize(
    "deadline",
    ["tomorrow", "2099-02-30T10:00:00Z", "2099-02-05", "2099-02-05T18:00:00", 4102444800, "2099-02-05T25:00:00Z"],
)
async def test_bad_timestamps_are_422_with_an_example_of_a_good_one(recipient: ServiceHandle, deadline: Any) -> None:
    body = {"recipient_id": "nobody", "item": "n95-mask", "quantity": 10, "priority": "high", "deadline": deadline}
    async with nothing_written(recipient):
        refusal(await recipient.post("/needs", json=body), 422, "invalid_request", "body.deadline", "RFC 3339")


async def test_bad_query_parameters_are_422_naming_the_parameter(recipient: ServiceHandle) -> None:
    response = await recipient.get("/recipients", params={"country": "Italy"})
    refusal(response, 422, "invalid_request", "query.country")
    refusal(await recipient.get("/needs", params={"limit": 0}), 422, "invalid_request", "query.limit")
    refusal(await recipient.get("/needs", params={"offset": 10**20}), 422, "invalid_request", "query.offset")


# --- unusual text is data ------------------------------------------------------------------------------------


async def stored_name(handle: ServiceHandle, donor_id: str) -> str:
    async with handle.runtime.database.read() as conn:
        name = (await conn.execute(sa.select(donors.c.name).where(donors.c.donor_id == donor_id))).scalar_one()
    return str(name)


async def table_names(handle: ServiceHandle) -> set[str]:
    async with handle.runtime.database.read() as conn:
        return set(await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names()))


@pytest.mark.parametrize("index", range(len(HOSTILE_TEXT)))
async def test_any_text_is_stored_verbatim_and_returned_identically(pledge: ServiceHandle, index: int) -> None:
    text = HOSTILE_TEXT[index]
    donor_id = f"text-{index}"
    tables = await table_names(pledge)
    created = await pledge.post("/donors", json={"donor_id": donor_id, "name": text, "country": text[:200]})
    assert created.status_code == 201, created.text
    fetched = await pledge.get(f"/donors/{donor_id}")
    assert fetched.headers["content-type"] == "application/json", "served as JSON, never as markup"
    assert fetched.json()["name"] == text and created.json()["name"] == text
    assert await stored_name(pledge, donor_id) == text, "the database holds exactly what was sent"
    assert await table_names(pledge) == tables, "no table was dropped or created"
    events_page = (await pledge.get(f"/batches/{donor_id}/events")).json()
    assert events_page[0]["data"]["name"] == text, "the event carries the text verbatim too"


async def test_injection_in_paths_and_filters_matches_nothing(pledge: ServiceHandle) -> None:
    await ensure_donor(pledge)
    assert (await pledge.get("/donors/' OR '1'='1")).status_code == 404
    everything = await pledge.get("/pledges", params={"donor_id": "' OR '1'='1"})
    assert everything.status_code == 200 and everything.json()["total"] == 0
    assert (await pledge.get("/batches", params={"item": "x'; DROP TABLE batch_view;--"})).json()["total"] == 0
    assert "batch_view" in await table_names(pledge)


# --- no half-written state, no duplicated effect ------------------------------------------------------------


async def test_a_refused_retry_does_not_burn_the_idempotency_key(pledge: ServiceHandle) -> None:
    """A client whose first attempt was refused fixes it and retries with the same key: exactly one effect."""
    await ensure_donor(pledge)
    key = {**pledge.auth(), "Idempotency-Key": "bad-input-retry-1"}
    async with nothing_written(pledge):
        refusal(
            await pledge.post("/pledges", json=pledge_body("retry-1", quantity=0), headers=key), 422, "invalid_request"
        )
        refusal(
            await pledge.post("/pledges", json=pledge_body("retry-1", unit="crate"), headers=key),
            422,
            "invalid_request",
        )
    before = await footprint(pledge)
    first = await pledge.post("/pledges", json=pledge_body("retry-1"), headers=key)
    again = await pledge.post("/pledges", json=pledge_body("retry-1"), headers=key)
    assert first.status_code == again.status_code == 201 and again.headers.get("idempotent-replay") == "true"
    events_after, _outbox, keys_after = await footprint(pledge)
    assert (events_after - before[0], keys_after - before[2]) == (2, 1), "one pledge header and one batch, once"


async def test_a_pledge_refused_by_a_rule_writes_none_of_its_lines(pledge: ServiceHandle) -> None:
    lines = [LINE, {**LINE, "item": "gloves"}, {**LINE, "item": "goggles"}]
    body = {"pledge_id": "orphan", "donor_id": "never-registered", "lines": lines}
    async with nothing_written(pledge):
        refusal(await pledge.post("/pledges", json=body), 422, "rule_violation", "register it with POST /donors")
    assert (await pledge.get("/pledges/orphan")).status_code == 404
