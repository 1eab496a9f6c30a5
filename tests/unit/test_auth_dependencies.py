"""The FastAPI dependencies of authentication: what a route answers for each token, and what it logs."""

import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from shared.settings import Settings
from shared.web.auth import (
    Principal,
    Role,
    current_principal,
    ensure_site_access,
    get_auth_settings,
    install_auth_error_handler,
    mint_token,
    require_roles,
    use_auth_settings,
)
from tests.unit.auth_support import SECRET, STRANGER_SECRET, settings_with

# --- FastAPI dependencies ---------------------------------------------------------------------------------

operators_only = require_roles(Role.operator)
operators_and_auditors = require_roles(Role.operator, Role.auditor)
auditors_listed_by_mistake = require_roles(Role.auditor)


def build_app(settings: Settings) -> FastAPI:
    app = FastAPI()
    install_auth_error_handler(app)
    use_auth_settings(app, settings)

    @app.get("/me")
    async def me(principal: Annotated[Principal, Depends(current_principal)]) -> dict[str, str]:
        return {"actor": principal.actor}

    @app.post("/sites/{site_id}/receipts")
    async def receive(site_id: str, principal: Annotated[Principal, Depends(operators_only)]) -> dict[str, str]:
        ensure_site_access(principal, site_id)
        return {"received_by": principal.actor}

    @app.get("/sites/{site_id}/stock")
    async def stock(site_id: str, principal: Annotated[Principal, Depends(operators_and_auditors)]) -> list[str]:
        ensure_site_access(principal, site_id)
        return []

    @app.post("/notes")
    async def note(principal: Annotated[Principal, Depends(auditors_listed_by_mistake)]) -> dict[str, str]:
        return {"written_by": principal.actor}

    return app


async def call(settings: Settings, method: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=build_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://aidtrail.test") as client:
        return await client.request(method, path, headers=headers)


def bearer(settings: Settings, role: Role, **scope: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token('li.wei', role, settings=settings, **scope)}"}


def assert_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    message: str = body["error"]["message"]
    return message


async def test_missing_header_is_401_with_bearer_challenge(settings: Settings) -> None:
    response = await call(settings, "GET", "/me")

    message = assert_error(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "missing Authorization header" in message


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        ("Bearer not-a-jwt", "malformed"),
        ("Basic bGk6d2Vp", "'Basic' scheme"),
        ("Bearer", "token is missing"),
    ],
)
async def test_bad_authorization_is_401(authorization: str, expected: str, settings: Settings) -> None:
    response = await call(settings, "GET", "/me", {"Authorization": authorization})

    assert expected in assert_error(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_expired_token_is_401_and_neither_reply_nor_log_reveals_it(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    issued = datetime.now(UTC) - timedelta(hours=13)
    token = mint_token("li.wei", Role.operator, issued_at=issued, settings=settings)

    with caplog.at_level(logging.DEBUG):
        response = await call(settings, "GET", "/me", {"Authorization": f"Bearer {token}"})

    assert "token expired at" in assert_error(response, 401, "unauthenticated")
    assert any("token expired at" in record.getMessage() for record in caplog.records)
    for sensitive in (token, SECRET):
        assert sensitive not in response.text
        assert sensitive not in caplog.text


async def test_the_apps_settings_come_from_its_state_with_no_dependency_override(settings: Settings) -> None:
    """The services' way (create_app): a non-empty dependency_overrides would slow every request down."""
    app = build_app(settings)
    assert app.dependency_overrides == {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://aidtrail.test") as client:
        ours = await client.get("/me", headers=bearer(settings, Role.operator))
        foreign = await client.get("/me", headers=bearer(Settings(jwt_secret=STRANGER_SECRET), Role.operator))
    assert ours.status_code == 200
    assert_error(foreign, 401, "unauthenticated")


async def test_a_dependency_override_of_the_auth_settings_still_wins(settings: Settings) -> None:
    """Tests and tools may swap the settings the old way; the override beats the app's state."""
    app = build_app(Settings(jwt_secret=STRANGER_SECRET))
    app.dependency_overrides[get_auth_settings] = lambda: settings
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://aidtrail.test") as client:
        response = await client.get("/me", headers=bearer(settings, Role.operator))
    assert response.status_code == 200


async def test_valid_token_reaches_the_route(settings: Settings) -> None:
    response = await call(settings, "GET", "/me", bearer(settings, Role.donor, donor_id="donor-3"))

    assert response.status_code == 200
    assert response.json() == {"actor": "donor:li.wei"}


async def test_wrong_role_is_403_naming_the_allowed_roles(settings: Settings) -> None:
    response = await call(settings, "POST", "/sites/wh-1/receipts", bearer(settings, Role.donor))

    message = assert_error(response, 403, "forbidden")
    assert message == "role donor may not POST /sites/wh-1/receipts; allowed roles: operator, admin"


async def test_operator_is_403_at_another_site_and_200_at_their_own(settings: Settings) -> None:
    headers = bearer(settings, Role.operator, sites=["wh-1"])

    elsewhere = await call(settings, "POST", "/sites/wh-2/receipts", headers)
    home = await call(settings, "POST", "/sites/wh-1/receipts", headers)

    assert "site 'wh-2'" in assert_error(elsewhere, 403, "forbidden")
    assert home.status_code == 200
    assert home.json() == {"received_by": "operator:li.wei"}


async def test_admin_passes_role_and_site_checks(settings: Settings) -> None:
    response = await call(settings, "POST", "/sites/wh-9/receipts", bearer(settings, Role.admin))

    assert response.status_code == 200


async def test_auditor_may_read_but_never_write(settings: Settings) -> None:
    headers = bearer(settings, Role.auditor)

    read = await call(settings, "GET", "/sites/wh-1/stock", headers)
    write = await call(settings, "POST", "/notes", headers)

    assert read.status_code == 200
    assert "read-only" in assert_error(write, 403, "forbidden")


async def test_settings_come_from_the_overridable_dependency(settings: Settings) -> None:
    """A token minted for other settings fails, proving the app used the override and not get_settings()."""
    foreign = mint_token("li.wei", Role.admin, settings=settings_with(jwt_issuer="not-us"))

    response = await call(settings, "GET", "/me", {"Authorization": f"Bearer {foreign}"})

    assert "issuer" in assert_error(response, 401, "unauthenticated")
