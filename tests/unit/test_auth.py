"""Bearer JWT authentication, role checks, scope helpers and the `aidtrail token` command.

Refused tokens are crafted by hand where a library would refuse to make them (alg=none, a foreign alg
header), because those are exactly the tokens an attacker would send.
"""

import base64
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import httpx
import jwt
import pytest
import typer
from fastapi import Depends, FastAPI
from typer.testing import CliRunner

from shared.cli.token_commands import token as token_command
from shared.settings import Settings, get_settings
from shared.web.auth import (
    ALL_ROLES,
    READ_ONLY_ROLES,
    AuthError,
    AuthHTTPError,
    Principal,
    Role,
    current_principal,
    decode_token,
    ensure_donor_access,
    ensure_may_write,
    ensure_recipient_access,
    ensure_role,
    ensure_site_access,
    get_auth_settings,
    install_auth_error_handler,
    key_id_for,
    mint_token,
    parse_role,
    require_roles,
    use_auth_settings,
)

SECRET = "unit-test-current-secret-0123456789-abcdefghij"
OLD_SECRET = "unit-test-retired-secret-9876543210-zyxwvutsrq"
STRANGER_SECRET = "someone-elses-deployment-secret-0123456789-xyz"


def settings_with(*, previous: list[str] | None = None, **overrides: Any) -> Settings:
    return Settings(jwt_secret=SECRET, jwt_previous_secrets=previous or [], **overrides)


@pytest.fixture
def settings() -> Settings:
    return settings_with()


def b64url_json(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def valid_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "mallory",
        "role": "admin",
        "aud": "aidtrail",
        "iss": "aidtrail",
        "iat": now,
        "exp": now + 3600,
    }
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def refusal(token: str, settings: Settings) -> str:
    with pytest.raises(AuthError) as caught:
        decode_token(token, settings)
    return caught.value.message


# --- minting and decoding ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
def test_every_role_survives_a_round_trip(role: Role, settings: Settings) -> None:
    token = mint_token(
        "li.wei",
        role,
        sites=["wh-wuhan-1", "wh-xian-2"],
        recipient_id="hosp-7",
        donor_id="donor-3",
        settings=settings,
    )

    principal = decode_token(token, settings)

    assert principal == Principal(
        subject="li.wei",
        role=role,
        sites=frozenset({"wh-wuhan-1", "wh-xian-2"}),
        recipient_id="hosp-7",
        donor_id="donor-3",
    )
    assert principal.actor == f"{role.value}:li.wei"


def test_minted_token_carries_the_documented_claims_and_a_key_id(settings: Settings) -> None:
    token = mint_token("li.wei", "operator", sites="wh-wuhan-1", ttl_seconds=600, settings=settings)

    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "HS256"
    assert header["kid"] == key_id_for(SECRET)
    assert SECRET not in json.dumps(header)
    assert claims["exp"] - claims["iat"] == 600
    assert claims["sites"] == ["wh-wuhan-1"]  # a bare string is one site, not a list of letters
    assert {"sub", "role", "aud", "iss", "recipient_id", "donor_id"} <= claims.keys()


def test_minting_refuses_nonsense(settings: Settings) -> None:
    with pytest.raises(ValueError, match="subject"):
        mint_token("", Role.donor, settings=settings)
    with pytest.raises(ValueError, match="ttl_seconds"):
        mint_token("li.wei", Role.donor, ttl_seconds=0, settings=settings)
    with pytest.raises(ValueError, match="valid roles: donor, operator"):
        mint_token("li.wei", "boss", settings=settings)


def test_parse_role_lists_the_valid_roles() -> None:
    assert parse_role("auditor") is Role.auditor
    with pytest.raises(ValueError, match="unknown role 'boss'; valid roles: donor, operator, dispatcher"):
        parse_role("boss")


def test_expired_token_is_refused_with_the_expiry_time(settings: Settings) -> None:
    issued = datetime.now(UTC) - timedelta(hours=2)
    token = mint_token("li.wei", Role.operator, ttl_seconds=3600, issued_at=issued, settings=settings)

    message = refusal(token, settings)

    expired_at = datetime.fromtimestamp(int(issued.timestamp()) + 3600, UTC).isoformat()
    assert message.startswith(f"token expired at {expired_at}")
    assert "aidtrail token" in message


def test_token_from_the_future_is_refused(settings: Settings) -> None:
    issued = datetime.now(UTC) + timedelta(hours=1)
    token = mint_token("li.wei", Role.operator, issued_at=issued, settings=settings)

    assert "not valid yet" in refusal(token, settings)


def test_token_signed_with_another_secret_is_refused(settings: Settings) -> None:
    token = mint_token("li.wei", Role.admin, secret=STRANGER_SECRET, settings=settings)

    message = refusal(token, settings)

    assert "signature" in message
    assert "AIDTRAIL_JWT_SECRET" in message


def test_tampered_claims_break_the_signature(settings: Settings) -> None:
    header, _, signature = mint_token("li.wei", Role.donor, settings=settings).split(".")
    forged_payload = b64url_json(valid_claims(sub="li.wei", role="admin"))

    assert "signature" in refusal(f"{header}.{forged_payload}.{signature}", settings)


def test_wrong_audience_is_refused(settings: Settings) -> None:
    token = mint_token("li.wei", Role.operator, settings=settings_with(jwt_audience="other-system"))

    message = refusal(token, settings)

    assert "'other-system'" in message
    assert "expects 'aidtrail'" in message
    assert "AIDTRAIL_JWT_AUDIENCE" in message


def test_wrong_issuer_is_refused(settings: Settings) -> None:
    token = mint_token("li.wei", Role.operator, settings=settings_with(jwt_issuer="someone-else"))

    assert "issuer is 'someone-else'" in refusal(token, settings)


def test_alg_none_token_is_refused(settings: Settings) -> None:
    unsigned = f"{b64url_json({'alg': 'none', 'typ': 'JWT'})}.{b64url_json(valid_claims())}."

    assert "alg=none" in refusal(unsigned, settings)


def test_hs512_token_is_refused_even_with_the_right_secret(settings: Settings) -> None:
    token = jwt.encode(valid_claims(), SECRET + SECRET, algorithm="HS512")

    assert "'HS512'" in refusal(token, settings)


def test_rs256_header_is_refused_before_any_key_is_used(settings: Settings) -> None:
    header = b64url_json({"alg": "RS256", "typ": "JWT"})
    token = f"{header}.{b64url_json(valid_claims())}.{b64url_json({'not': 'a signature'})}"

    message = refusal(token, settings)

    assert "'RS256'" in message
    assert "only HS256" in message


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        (valid_claims(role=None), "no role claim"),
        (valid_claims(role="boss"), "unknown role 'boss'; valid roles: donor"),
        (valid_claims(role=7), "role must be a string"),
        (valid_claims(exp=None), "lacks the required 'exp' claim"),
        (valid_claims(sub=None), "lacks the required 'sub' claim"),
        (valid_claims(sites="wh-1"), "'sites' must be a list of strings"),
        (valid_claims(donor_id=12), "'donor_id' must be a string or null"),
    ],
)
def test_tokens_with_bad_claims_are_refused(claims: dict[str, Any], expected: str, settings: Settings) -> None:
    token = jwt.encode(claims, SECRET, algorithm="HS256")

    assert expected in refusal(token, settings)


@pytest.mark.parametrize("garbage", ["", "not-a-token", "a.b", "one.two.three", "x" * 500])
def test_malformed_tokens_are_refused(garbage: str, settings: Settings) -> None:
    assert "malformed" in refusal(garbage, settings)


# --- key rotation -----------------------------------------------------------------------------------------


def test_token_signed_with_a_previous_secret_is_accepted_while_listed() -> None:
    old_token = mint_token("li.wei", Role.operator, settings=Settings(jwt_secret=OLD_SECRET))

    rotated = settings_with(previous=[OLD_SECRET])
    assert decode_token(old_token, rotated).subject == "li.wei"

    retired = settings_with(previous=[])
    assert "signature" in refusal(old_token, retired)


def test_rotation_works_without_a_kid_header() -> None:
    old_token = jwt.encode(valid_claims(role="auditor"), OLD_SECRET, algorithm="HS256")
    assert "kid" not in jwt.get_unverified_header(old_token)

    assert decode_token(old_token, settings_with(previous=[OLD_SECRET])).role is Role.auditor


def test_unknown_kid_still_verifies_against_the_accepted_secrets(settings: Settings) -> None:
    token = mint_token("li.wei", Role.donor, key_id="hand-picked", settings=settings)

    assert decode_token(token, settings).role is Role.donor


def test_kid_of_an_unknown_key_is_named_in_the_refusal(settings: Settings) -> None:
    token = mint_token("li.wei", Role.donor, secret=STRANGER_SECRET, settings=settings)

    assert key_id_for(STRANGER_SECRET) in refusal(token, settings)


def test_refusals_never_contain_the_secret_or_the_token() -> None:
    settings = settings_with(previous=[OLD_SECRET])
    expired = datetime.now(UTC) - timedelta(days=1)
    tokens = [
        mint_token("li.wei", Role.admin, issued_at=expired, ttl_seconds=60, settings=settings),
        mint_token("li.wei", Role.admin, secret=STRANGER_SECRET, settings=settings),
        mint_token("li.wei", Role.admin, settings=settings_with(jwt_audience="elsewhere")),
        jwt.encode(valid_claims(role="boss"), SECRET, algorithm="HS256"),
        jwt.encode(valid_claims(), SECRET + SECRET, algorithm="HS512"),
        f"{b64url_json({'alg': 'none'})}.{b64url_json(valid_claims())}.",
        f"{b64url_json({'alg': 'HS256'})}.bm90IGpzb24.{b64url_json({'sig': 1})}",
    ]
    for token in tokens:
        message = refusal(token, settings)
        for sensitive in (SECRET, OLD_SECRET, STRANGER_SECRET, token):
            assert sensitive not in message


# --- scope helpers ----------------------------------------------------------------------------------------


def status_of(check: Any, *args: Any) -> int:
    try:
        check(*args)
    except AuthHTTPError as refused:
        return refused.status_code
    return 200


def test_site_access_limits_operators_and_dispatchers_to_their_sites() -> None:
    operator = Principal("li.wei", Role.operator, sites=frozenset({"wh-wuhan-1"}))
    dispatcher = Principal("zhao", Role.dispatcher, sites=frozenset({"wh-xian-2"}))

    assert status_of(ensure_site_access, operator, "wh-wuhan-1") == 200
    assert status_of(ensure_site_access, operator, "wh-xian-2") == 403
    assert status_of(ensure_site_access, dispatcher, "wh-xian-2") == 200
    assert status_of(ensure_site_access, dispatcher, "wh-wuhan-1") == 403
    assert status_of(ensure_site_access, Principal("root", Role.admin), "wh-anywhere") == 200
    assert status_of(ensure_site_access, Principal("eve", Role.auditor), "wh-anywhere") == 200


def test_site_refusal_says_which_sites_the_token_has() -> None:
    operator = Principal("li.wei", Role.operator, sites=frozenset({"wh-wuhan-1"}))

    with pytest.raises(AuthHTTPError) as caught:
        ensure_site_access(operator, "wh-xian-2")

    assert caught.value.code == "forbidden"
    assert "operator:li.wei may not act on site 'wh-xian-2'" in caught.value.message
    assert "wh-wuhan-1" in caught.value.message
    assert "--site wh-xian-2" in caught.value.message


def test_recipient_access_limits_recipient_staff_to_their_own_recipient() -> None:
    nurse = Principal("chen", Role.recipient_staff, recipient_id="hosp-7")
    unscoped_nurse = Principal("chen", Role.recipient_staff)

    assert status_of(ensure_recipient_access, nurse, "hosp-7") == 200
    assert status_of(ensure_recipient_access, nurse, "hosp-8") == 403
    assert status_of(ensure_recipient_access, unscoped_nurse, "hosp-7") == 403
    assert status_of(ensure_recipient_access, Principal("root", Role.admin), "hosp-8") == 200
    with pytest.raises(AuthHTTPError) as caught:
        ensure_recipient_access(unscoped_nurse, "hosp-7")
    assert "mint it with `--recipient`" in caught.value.message


def test_donor_access_limits_donors_to_their_own_pledges() -> None:
    donor = Principal("acme", Role.donor, donor_id="donor-3")

    assert status_of(ensure_donor_access, donor, "donor-3") == 200
    assert status_of(ensure_donor_access, donor, "donor-4") == 403
    assert status_of(ensure_donor_access, Principal("root", Role.admin), "donor-4") == 200


def test_scope_helpers_only_restrict_the_roles_scoped_along_their_dimension() -> None:
    """So that a route open to donors and operators can apply both checks without locking either out."""
    donor = Principal("acme", Role.donor, donor_id="donor-3")
    operator = Principal("li.wei", Role.operator, sites=frozenset({"wh-wuhan-1"}))

    assert status_of(ensure_site_access, donor, "wh-wuhan-1") == 200
    assert status_of(ensure_donor_access, operator, "donor-3") == 200


def test_role_checks_let_admin_through_and_keep_auditors_read_only() -> None:
    auditor = Principal("eve", Role.auditor)

    assert status_of(ensure_role, Principal("root", Role.admin), [Role.donor], "POST /pledges") == 200
    assert status_of(ensure_role, auditor, [Role.donor], "POST /pledges") == 403
    assert status_of(ensure_may_write, auditor, "POST /pledges") == 403
    assert status_of(ensure_may_write, Principal("acme", Role.donor), "POST /pledges") == 200
    assert set(READ_ONLY_ROLES) == {Role.auditor}
    assert set(ALL_ROLES) == set(Role)


def test_require_roles_refuses_misconfiguration_at_import_time() -> None:
    with pytest.raises(ValueError, match="at least one role"):
        require_roles()
    with pytest.raises(ValueError, match="unknown role 'operater'"):
        require_roles("operater")


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
