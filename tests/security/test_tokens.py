"""Tokens through a real service (the pledge service on the real broker), not a toy app.

tests/unit/test_auth.py proves `decode_token` refuses each bad token; this proves the running service wires it up:
every bad token is a 401 with the Bearer challenge on a real route, key rotation works on a service started with
AIDTRAIL_JWT_PREVIOUS_SECRETS and ends when the old secret is dropped, and the service's own log output (captured
at DEBUG, so every library speaks) and its error bodies never contain a secret or a token.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from shared.settings import Settings
from shared.web.auth import Role, mint_token
from tests.fixtures.databases import sqlite_url
from tests.harness import ServiceHandle, running_service, service_settings

pytestmark = pytest.mark.kafka

CURRENT = "token-suite-current-secret-4f1c9e2a7b3d8e6f0a5c"
PREVIOUS = "token-suite-previous-secret-9d2e7a1c4b8f3e6d0c5a"
RETIRED = "token-suite-retired-secret-0b7c3e9f2a6d1e8c4f5b"
ROUTE = "/pledges"  # a real read route: donor, operator, auditor and admin may call it


def settings_for(tmp_path: Path, topic_prefix: str, kafka_bootstrap: str, previous: list[str]) -> Settings:
    base = service_settings("pledge", sqlite_url(tmp_path), topic_prefix, kafka_bootstrap)
    return base.model_copy(update={"jwt_secret": CURRENT, "jwt_previous_secrets": previous, "log_level": "DEBUG"})


@asynccontextmanager
async def pledge_service(settings: Settings) -> AsyncIterator[ServiceHandle]:
    async with running_service("pledge", settings) as handle:
        yield handle


def b64url(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": "mallory", "role": "admin", "aud": "aidtrail", "iss": "aidtrail", "iat": now, "exp": now + 600}
    return {**base, **overrides}


def bad_tokens(settings: Settings) -> dict[str, str]:
    """Each token an attacker or a stale client would send, with the words its refusal must contain."""
    yesterday = datetime.now(UTC) - timedelta(days=1)
    return {
        "expired": mint_token("li", Role.admin, issued_at=yesterday, ttl_seconds=60, settings=settings),
        "signature": mint_token("li", Role.admin, secret=RETIRED, settings=settings),
        "audience": jwt.encode(claims(aud="another-deployment"), CURRENT, algorithm="HS256"),
        "issuer": jwt.encode(claims(iss="someone-else"), CURRENT, algorithm="HS256"),
        "alg=none": f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(claims())}.",
        "only HS256": jwt.encode(claims(), CURRENT + CURRENT, algorithm="HS512"),
        "malformed": "not-a-token",
        "unknown role": jwt.encode(claims(role="root"), CURRENT, algorithm="HS256"),
    }


async def get(service: ServiceHandle, token: str | None, scheme: str = "Bearer") -> httpx.Response:
    headers = {"Authorization": f"{scheme} {token}"} if token is not None else {}
    return await service.http.get(ROUTE, headers=headers)


def assert_unauthenticated(response: httpx.Response, words: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    error = response.json()["error"]
    assert error["code"] == "unauthenticated" and words in error["message"], error["message"]


async def test_every_bad_token_is_a_401_on_a_real_route(
    tmp_path: Path, topic_prefix: str, kafka_bootstrap: str
) -> None:
    settings = settings_for(tmp_path, topic_prefix, kafka_bootstrap, previous=[])
    async with pledge_service(settings) as service:
        for words, token in bad_tokens(settings).items():
            assert_unauthenticated(await get(service, token), words)
        assert_unauthenticated(await get(service, None), "missing Authorization header")
        assert_unauthenticated(await get(service, CURRENT, scheme="Basic"), "Bearer")
        assert (await get(service, mint_token("li", Role.auditor, settings=settings))).status_code == 200


async def test_key_rotation_on_a_running_service(tmp_path: Path, topic_prefix: str, kafka_bootstrap: str) -> None:
    """Step 1 of the rotation in docs/security.md, then step 3 on the same database after a restart."""
    old_token = mint_token("li", Role.operator, settings=Settings(jwt_secret=PREVIOUS))
    rotating = settings_for(tmp_path, topic_prefix, kafka_bootstrap, previous=[PREVIOUS])
    async with pledge_service(rotating) as service:
        assert (await get(service, old_token)).status_code == 200, "a token of the previous secret still works"
        new_token = mint_token("li", Role.operator, settings=rotating)
        assert jwt.get_unverified_header(new_token)["kid"] != jwt.get_unverified_header(old_token)["kid"]
        assert (await get(service, new_token)).status_code == 200, "new tokens are signed with the new secret"
        assert_unauthenticated(await get(service, mint_token("li", Role.admin, secret=RETIRED)), "signature")
    rotated = settings_for(tmp_path, topic_prefix, kafka_bootstrap, previous=[])
    async with pledge_service(rotated) as service:
        assert_unauthenticated(await get(service, old_token), "retired key")
        assert (await get(service, new_token)).status_code == 200


async def test_neither_logs_nor_error_bodies_reveal_a_secret_or_a_token(
    tmp_path: Path, topic_prefix: str, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for(tmp_path, topic_prefix, kafka_bootstrap, previous=[PREVIOUS])
    tokens = list(bad_tokens(settings).values())
    good = mint_token("li", Role.admin, settings=settings)
    bodies: list[str] = []
    async with pledge_service(settings) as service:  # started here, so its log handler writes to the capture
        for token in tokens:
            bodies.append((await get(service, token)).text)
        for secret in (CURRENT, PREVIOUS):
            bodies.append((await get(service, secret)).text)  # a secret pasted where the token belongs
            bodies.append((await get(service, secret, scheme="Basic")).text)
        bodies.append((await service.http.post("/donors", json={"name": "x"}, headers={"Authorization": good})).text)
        bodies.append((await service.http.get(ROUTE, headers={"Authorization": f"Bearer {good}"})).text)
    logs = capsys.readouterr().err
    assert '"logger": "shared.web.auth"' in logs, "the refusals were logged, so the check below means something"
    for sensitive in (CURRENT, PREVIOUS, good, *tokens):
        assert sensitive not in logs, f"{sensitive[:12]}... appears in the service's log output"
        assert not [body for body in bodies if sensitive in body], f"{sensitive[:12]}... appears in an error body"
