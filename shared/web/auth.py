"""Bearer JWT authentication and role-based authorisation for the aidtrail services.

Every request carries `Authorization: Bearer <token>`, an HS256 JWT minted by `aidtrail token`. The token says
who the caller is (`sub`), which role they act in (`role`) and, for roles that only see part of the world,
their scope (`sites`, `recipient_id`, `donor_id`). The resulting `Principal.actor` ("role:subject") is stamped
on every event we write, so the audit trail names a person and the capacity they acted in.

Policy
------
* **Authentication** (`current_principal`): no token, or a token we refuse, is a 401 with
  `WWW-Authenticate: Bearer`. Only HS256 is accepted; `alg=none` and every other algorithm are refused before
  any key is touched, so an attacker cannot choose how we verify.
* **Key rotation**: tokens signed with `AIDTRAIL_JWT_SECRET` or any of `AIDTRAIL_JWT_PREVIOUS_SECRETS` are
  accepted. The `kid` header (a hash prefix of the secret, never the secret) picks the key; without a known
  `kid` we try each accepted secret. Removing a secret from the list retires every token it signed.
* **Roles** (`require_roles`): each route names the roles that may call it; `admin` passes every role check.
* **Read-only roles**: `auditor` (see `READ_ONLY_ROLES`) may call read routes (GET/HEAD/OPTIONS) only.
  `require_roles` refuses a read-only role on any other method even when a route lists it by mistake.
* **Scope** (`ensure_site_access`, `ensure_recipient_access`, `ensure_donor_access`): each helper restricts
  only the roles scoped along its dimension (operators and dispatchers to their `sites`, recipient staff to
  their `recipient_id`, donors to their `donor_id`). Other roles pass, because which roles reach a route at
  all is `require_roles`'s job; this keeps the helpers composable on routes open to several roles.

Refusals render as `{"error": {"code": "unauthenticated" | "forbidden", "message": ...}}` once
`install_auth_error_handler(app)` is called. Messages say what is wrong and how to fix it, and never contain
the secret or the token.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Any, NoReturn

from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from shared.settings import Settings, get_settings
from shared.web.tokens import (
    ALL_ROLES,
    DEFAULT_TTL_SECONDS,
    MINT_HINT,
    READ_ONLY_ROLES,
    SAFE_METHODS,
    SITE_SCOPED_ROLES,
    AuthError,
    Principal,
    Role,
    _shorten,
    decode_token,
    is_read_only,
    key_id_for,
    mint_token,
    parse_role,
)

logger = logging.getLogger(__name__)


class AuthHTTPError(HTTPException):
    """A 401/403 that `auth_error_handler` renders in the services' `{"error": {...}}` shape."""

    def __init__(self, status_code: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(status_code=status_code, detail={"code": code, "message": message}, headers=headers)
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def unauthenticated(message: str) -> AuthHTTPError:
    return AuthHTTPError(401, "unauthenticated", message, headers={"WWW-Authenticate": "Bearer"})


def forbidden(message: str) -> AuthHTTPError:
    return AuthHTTPError(403, "forbidden", message)


async def auth_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Registered for AuthHTTPError only, so other HTTPExceptions keep FastAPI's default rendering."""
    if not isinstance(exc, AuthHTTPError):  # pragma: no cover - FastAPI routes only AuthHTTPError here
        raise exc
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)


def install_auth_error_handler(app: FastAPI) -> None:
    app.add_exception_handler(AuthHTTPError, auth_error_handler)


# --- minting ----------------------------------------------------------------------------------------------


bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="aidtrail-token",
    description="An HS256 JWT from `aidtrail token --role <role> --sub <you>`.",
)


def use_auth_settings(app: FastAPI, settings: Settings) -> None:
    """Give an app's authentication its own settings, on `app.state`.

    Not through `app.dependency_overrides`: while that mapping is non-empty, FastAPI rebuilds the dependants of
    every route on every request, and a sync override also costs a thread-pool hop per request.
    """
    app.state.auth_settings = settings


async def get_auth_settings(connection: HTTPConnection) -> Settings:
    """The app's settings (`use_auth_settings`), else the process's. A dependency of its own so tests and tools
    can still swap it with `app.dependency_overrides`; async, so that it runs on the event loop, not a thread."""
    settings = getattr(connection.app.state, "auth_settings", None)
    return settings if isinstance(settings, Settings) else get_settings()


def bearer_token(authorization: str | None) -> str:
    """Extract the token from the header, refusing with 401 in words that say how to send it properly."""
    if not authorization or not authorization.strip():
        raise unauthenticated(f"missing Authorization header; send `Authorization: Bearer <token>` ({MINT_HINT})")
    scheme, _, token = authorization.strip().partition(" ")
    if not token.strip():
        raise unauthenticated("Authorization header must be `Bearer <token>`; the scheme or the token is missing")
    if scheme.lower() != "bearer":
        named = f" {_shorten(scheme, 20)}" if scheme.isalpha() else ""
        raise unauthenticated(f"Authorization header uses the{named} scheme; send `Authorization: Bearer <token>`")
    return token.strip()


async def current_principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
    settings: Annotated[Settings, Depends(get_auth_settings)],
) -> Principal:
    """Authenticate the request. `_credentials` is unused: it is there so OpenAPI documents the bearer scheme."""
    token = bearer_token(request.headers.get("authorization"))
    try:
        principal = decode_token(token, settings)
    except AuthError as exc:
        logger.info("refused token for %s %s: %s", request.method, request.url.path, exc.message)
        raise unauthenticated(exc.message) from None
    request.state.principal = principal
    return principal


def require_roles(*roles: Role | str) -> Callable[[Request, Principal], Awaitable[Principal]]:
    """A dependency admitting the given roles (and admin); read-only roles are admitted on read methods only.

    Role names are parsed here, at import time of the route module, so a typo fails at startup, not per request.
    """
    if not roles:
        raise ValueError("require_roles needs at least one role; use current_principal to admit everyone")
    allowed = frozenset(parse_role(role) for role in roles) | {Role.admin}

    async def dependency(request: Request, principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        action = f"{request.method} {request.url.path}"
        ensure_role(principal, allowed, action)
        if request.method.upper() not in SAFE_METHODS:
            ensure_may_write(principal, action)
        return principal

    return dependency


def ensure_role(principal: Principal, allowed: Iterable[Role], action: str) -> None:
    """For checks a route can only make inside the handler, e.g. when the allowed roles depend on the body."""
    allowed_roles = frozenset(allowed) | {Role.admin}
    if principal.role in allowed_roles:
        return
    names = ", ".join(role.value for role in Role if role in allowed_roles)
    _refuse(principal, f"role {principal.role} may not {action}; allowed roles: {names}")


def ensure_may_write(principal: Principal, action: str) -> None:
    if is_read_only(principal.role):
        _refuse(
            principal,
            f"role {principal.role} is read-only and may not {action}; it may call read (GET) routes only",
        )


def ensure_site_access(principal: Principal, site_id: str) -> None:
    if principal.may_access_site(site_id):
        return
    own = ", ".join(sorted(principal.sites)) or "none"
    _refuse(
        principal,
        f"{principal.actor} may not act on site {site_id!r}; this token's sites: {own}; "
        f"mint a token with `--site {site_id}` if this person works there",
    )


def ensure_recipient_access(principal: Principal, recipient_id: str) -> None:
    if principal.may_access_recipient(recipient_id):
        return
    own = repr(principal.recipient_id) if principal.recipient_id else "none (mint it with `--recipient`)"
    _refuse(
        principal,
        f"{principal.actor} may not act for recipient {recipient_id!r}; this token's recipient: {own}",
    )


def ensure_donor_access(principal: Principal, donor_id: str) -> None:
    if principal.may_access_donor(donor_id):
        return
    own = repr(principal.donor_id) if principal.donor_id else "none (mint it with `--donor`)"
    _refuse(principal, f"{principal.actor} may not act for donor {donor_id!r}; this token's donor: {own}")


def own_donor_filter(principal: Principal, donor_id: str | None) -> str | None:
    """The donor filter of a list route: a donor's defaults to, and may only be, their own donor id.

    Without it a list route would show a donor every donor's pledges and batches when they leave the filter out.
    Other roles keep the filter they asked for (None: everyone's).
    """
    if principal.role is not Role.donor:
        return donor_id
    if not principal.donor_id:
        _refuse(principal, "this donor token names no donor; mint it with `aidtrail token --role donor --donor <id>`")
    ensure_donor_access(principal, donor_id or principal.donor_id)
    return principal.donor_id


def _refuse(principal: Principal, message: str) -> NoReturn:
    logger.info("forbidden for %s: %s", principal.actor, message)
    raise forbidden(message)


__all__ = [
    "ALL_ROLES",
    "DEFAULT_TTL_SECONDS",
    "MINT_HINT",
    "READ_ONLY_ROLES",
    "SAFE_METHODS",
    "SITE_SCOPED_ROLES",
    "AuthError",
    "AuthHTTPError",
    "Principal",
    "Role",
    "_shorten",
    "bearer_token",
    "current_principal",
    "decode_token",
    "ensure_donor_access",
    "ensure_may_write",
    "ensure_recipient_access",
    "ensure_role",
    "ensure_site_access",
    "forbidden",
    "get_auth_settings",
    "install_auth_error_handler",
    "is_read_only",
    "key_id_for",
    "mint_token",
    "parse_role",
    "require_roles",
    "unauthenticated",
    "use_auth_settings",
]
