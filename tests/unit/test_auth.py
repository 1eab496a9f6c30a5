"""Bearer JWT minting, decoding and key rotation.

Refused tokens are crafted by hand where a library would refuse to make them (alg=none, a foreign alg
header), because those are exactly the tokens an attacker would send.
"""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from shared.settings import Settings
from shared.web.auth import Principal, Role, decode_token, key_id_for, mint_token, parse_role
from tests.unit.auth_support import (
    OLD_SECRET,
    SECRET,
    STRANGER_SECRET,
    b64url_json,
    refusal,
    settings_with,
    valid_claims,
)

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
