"""What the authentication suites share: the secrets they sign with, and hand-made tokens and claims."""

import base64
import json
import time
from typing import Any

import pytest

from shared.settings import Settings
from shared.web.auth import AuthError, decode_token

SECRET = "unit-test-current-secret-0123456789-abcdefghij"
OLD_SECRET = "unit-test-retired-secret-9876543210-zyxwvutsrq"
STRANGER_SECRET = "someone-elses-deployment-secret-0123456789-xyz"


def settings_with(*, previous: list[str] | None = None, **overrides: Any) -> Settings:
    return Settings(jwt_secret=SECRET, jwt_previous_secrets=previous or [], **overrides)


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
