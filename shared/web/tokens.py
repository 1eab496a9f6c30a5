"""Bearer tokens: who the caller is (`sub`), the role they act in, and the scope of that role.

HS256 only; `alg=none` and every other algorithm are refused before any key is touched. Tokens signed with the
current secret or any previous one (rotation) are accepted, picked by `kid`. Messages say what is wrong and how
to fix it, and never contain the secret or the token.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

import jwt

from shared.settings import Settings, get_settings

logger = logging.getLogger(__name__)

ALGORITHM: Final = "HS256"
DEFAULT_TTL_SECONDS: Final = 12 * 60 * 60
CLOCK_SKEW_SECONDS: Final = 30
KEY_ID_LENGTH: Final = 8
REQUIRED_CLAIMS: Final = ("sub", "aud", "iss", "iat", "exp")
MINT_HINT: Final = "mint a new one with `aidtrail token --role <role> --sub <you>`"


class Role(StrEnum):
    donor = "donor"
    operator = "operator"
    dispatcher = "dispatcher"
    recipient_staff = "recipient_staff"
    auditor = "auditor"
    admin = "admin"


ALL_ROLES: Final = frozenset(Role)
READ_ONLY_ROLES: Final = frozenset({Role.auditor})
WRITE_ROLES: Final = ALL_ROLES - READ_ONLY_ROLES
SITE_SCOPED_ROLES: Final = frozenset({Role.operator, Role.dispatcher})
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


def valid_role_names() -> str:
    return ", ".join(role.value for role in Role)


def parse_role(value: str | Role) -> Role:
    """Turn user or token input into a Role, with an error that lists the choices instead of a bare KeyError."""
    try:
        return Role(value)
    except ValueError:
        raise ValueError(f"unknown role {_shorten(value)}; valid roles: {valid_role_names()}") from None


def is_read_only(role: Role) -> bool:
    return role in READ_ONLY_ROLES


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller; services pass it to the domain so events record who acted."""

    subject: str
    role: Role
    sites: frozenset[str] = frozenset()
    recipient_id: str | None = None
    donor_id: str | None = None

    @property
    def actor(self) -> str:
        """The CloudEvents `actor` extension: role first, so an audit query can group by capacity."""
        return f"{self.role}:{self.subject}"

    @property
    def is_admin(self) -> bool:
        return self.role is Role.admin

    def may_access_site(self, site_id: str) -> bool:
        return self.role not in SITE_SCOPED_ROLES or site_id in self.sites

    def may_access_recipient(self, recipient_id: str) -> bool:
        return self.role is not Role.recipient_staff or recipient_id == self.recipient_id

    def may_access_donor(self, donor_id: str) -> bool:
        return self.role is not Role.donor or donor_id == self.donor_id


# --- errors -----------------------------------------------------------------------------------------------


class AuthError(Exception):
    """A token we refuse. The message is safe to show the caller and to log: it never holds secret or token."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def key_id_for(secret: str) -> str:
    """A short hash of the secret: lets a verifier pick the key during rotation without revealing it."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:KEY_ID_LENGTH]


def accepted_secrets(settings: Settings) -> list[str]:
    """Current secret first, so the common case verifies on the first try."""
    secrets = [settings.jwt_secret, *settings.jwt_previous_secrets]
    return list(dict.fromkeys(secret for secret in secrets if secret))


def mint_token(
    subject: str,
    role: Role | str,
    *,
    sites: Iterable[str] = (),
    recipient_id: str | None = None,
    donor_id: str | None = None,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    secret: str | None = None,
    key_id: str | None = None,
    settings: Settings | None = None,
    issued_at: datetime | None = None,
) -> str:
    """Mint the token a service will accept. `issued_at` exists so tests can mint already-expired tokens."""
    settings = settings or get_settings()
    signing_secret = secret if secret is not None else settings.jwt_secret
    if not subject:
        raise ValueError("subject must not be empty; it names the person on every event they cause")
    if ttl_seconds <= 0:
        raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds}")
    issued = int((issued_at or datetime.now(UTC)).timestamp())
    claims = {
        "sub": subject,
        "role": parse_role(role).value,
        "aud": settings.jwt_audience,
        "iss": settings.jwt_issuer,
        "iat": issued,
        "exp": issued + ttl_seconds,
        "sites": sorted({sites} if isinstance(sites, str) else set(sites)),
        "recipient_id": recipient_id,
        "donor_id": donor_id,
    }
    headers = {"kid": key_id or key_id_for(signing_secret)}
    return jwt.encode(claims, signing_secret, algorithm=ALGORITHM, headers=headers)


# --- verification -----------------------------------------------------------------------------------------


def decode_token(token: str, settings: Settings) -> Principal:
    """Verify a bearer token and return who it names, or raise AuthError saying why not."""
    header = _read_header(token)
    _ensure_hs256(header)
    claims = _verify_signature_and_claims(token, header, settings)
    return _principal_from_claims(claims)


def _read_header(token: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise AuthError(
            "token is malformed: expected three base64url parts separated by dots (header.payload.signature); "
            + MINT_HINT
        ) from None


def _ensure_hs256(header: dict[str, Any]) -> None:
    """Decide the algorithm ourselves: trusting the header's `alg` is how `none` and key-confusion attacks work."""
    alg = header.get("alg")
    if alg == ALGORITHM:
        return
    if alg is None or str(alg).lower() == "none":
        raise AuthError(f"token is unsigned (alg=none); only {ALGORITHM}-signed tokens are accepted; {MINT_HINT}")
    raise AuthError(f"token is signed with {_shorten(alg)}; only {ALGORITHM} is accepted; {MINT_HINT}")


def _candidate_secrets(header: dict[str, Any], settings: Settings) -> list[str]:
    """The secret the `kid` names if we know it; otherwise all of them (e.g. tokens minted without a kid)."""
    secrets = accepted_secrets(settings)
    kid = header.get("kid")
    named = [secret for secret in secrets if key_id_for(secret) == kid]
    return named or secrets


def _verify_signature_and_claims(token: str, header: dict[str, Any], settings: Settings) -> dict[str, Any]:
    for secret in _candidate_secrets(header, settings):
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                secret,
                algorithms=[ALGORITHM],
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": list(REQUIRED_CLAIMS), "strict_aud": True},
            )
            return claims
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as exc:
            raise AuthError(_explain_claim_failure(exc, token, settings)) from None
    raise AuthError(_signature_mismatch_message(header))


def _signature_mismatch_message(header: dict[str, Any]) -> str:
    kid = header.get("kid")
    key = f" (key id {_shorten(kid)})" if kid is not None else ""
    return (
        f"token signature{key} matches neither AIDTRAIL_JWT_SECRET nor any of AIDTRAIL_JWT_PREVIOUS_SECRETS; "
        f"it was minted for another deployment or with a retired key; {MINT_HINT}"
    )


def _explain_claim_failure(exc: jwt.PyJWTError, token: str, settings: Settings) -> str:
    """Only called after the signature verified, so quoting the token's own claims back is safe and useful."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return f"token expired at {_timestamp(_unverified_claim(token, 'exp'))}; {MINT_HINT}"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "token is not valid yet (issued in the future); check the clock of the machine that minted it"
    if isinstance(exc, jwt.InvalidAudienceError):
        audience = _shorten(_unverified_claim(token, "aud"))
        return (
            f"token audience is {audience} but this service expects {settings.jwt_audience!r} "
            f"(AIDTRAIL_JWT_AUDIENCE); mint it with the same settings as the service"
        )
    if isinstance(exc, jwt.InvalidIssuerError):
        issuer = _shorten(_unverified_claim(token, "iss"))
        return (
            f"token issuer is {issuer} but this service expects {settings.jwt_issuer!r} "
            f"(AIDTRAIL_JWT_ISSUER); mint it with the same settings as the service"
        )
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"token lacks the required {exc.claim!r} claim; {MINT_HINT}"
    reason = str(exc) if token not in str(exc) else type(exc).__name__
    return f"token is malformed ({_shorten(reason, 120)}); {MINT_HINT}"


def _unverified_claim(token: str, name: str) -> Any:
    payload = jwt.decode(token, options={"verify_signature": False})
    return payload.get(name)


def _principal_from_claims(claims: dict[str, Any]) -> Principal:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip():
        raise AuthError(f"token subject (sub) is empty; {MINT_HINT}")
    return Principal(
        subject=subject,
        role=_role_claim(claims.get("role")),
        sites=frozenset(_string_list_claim(claims, "sites")),
        recipient_id=_optional_string_claim(claims, "recipient_id"),
        donor_id=_optional_string_claim(claims, "donor_id"),
    )


def _role_claim(value: Any) -> Role:
    if value is None:
        raise AuthError(f"token carries no role claim; mint it with `aidtrail token --role <{valid_role_names()}>`")
    if not isinstance(value, str):
        raise AuthError(f"token role must be a string; valid roles: {valid_role_names()}")
    try:
        return parse_role(value)
    except ValueError as exc:
        raise AuthError(f"token {exc}; {MINT_HINT}") from None


def _string_list_claim(claims: dict[str, Any], name: str) -> list[str]:
    value = claims.get(name) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise AuthError(f"token claim {name!r} must be a list of strings; {MINT_HINT}")
    return value


def _optional_string_claim(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is not None and not isinstance(value, str):
        raise AuthError(f"token claim {name!r} must be a string or null; {MINT_HINT}")
    return value


def _timestamp(value: Any) -> str:
    try:
        return datetime.fromtimestamp(int(value), UTC).isoformat()
    except (TypeError, ValueError, OverflowError, OSError):
        return "an unreadable time"


def _shorten(value: object, limit: int = 40) -> str:
    """Quote caller-supplied text in a message without letting it flood the message or the logs."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- FastAPI dependencies ---------------------------------------------------------------------------------
