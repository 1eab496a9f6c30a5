"""JSON log lines with a correlation id, and redaction of credentials, for every aidtrail service.

One JSON object per line (`ts`, `level`, `logger`, `message`, `service`, `correlation_id`, plus any `extra=`
fields) so a log shipper can index lines without parsing prose, and so one pledge's journey through four
services can be followed by its correlation id. The id comes from the `X-Correlation-ID` request header (or is
made up at the edge) and lives in a contextvar for the duration of the request.

Redaction happens in a logging filter on our handler, before any formatter sees the record, so neither our
JSON lines nor a third-party formatter can print an `Authorization` header, anything shaped like a JWT, or
one of the configured secrets.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import uuid
from collections.abc import Iterable, Mapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any, Final, TextIO
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.settings import Settings, get_settings

CORRELATION_ID_HEADER: Final = "X-Correlation-ID"
REDACTED: Final = "[REDACTED]"
# Matches the event store's correlation_id column (64 chars) and keeps header injection out of log lines.
_VALID_CORRELATION_ID: Final = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_THIRD_PARTY_LOGGERS: Final = ("uvicorn", "uvicorn.error", "uvicorn.access")

correlation_id_var: ContextVar[str | None] = ContextVar("aidtrail_correlation_id", default=None)


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def current_correlation_id() -> str | None:
    """The id of the request (or message) being handled, or None outside one."""
    return correlation_id_var.get()


def get_correlation_id() -> str:
    """The current id, or a fresh one (not stored) when none is set.

    A new event always needs an id: outside a request, e.g. in a consumer, the event starts its own trail.
    The fresh id is not stored, so a long-lived loop does not glue unrelated events into one trail.
    """
    return correlation_id_var.get() or new_correlation_id()


def set_correlation_id(value: str | None) -> Token[str | None]:
    """Returns the token so a caller that sets an id outside a request (a consumer loop) can restore the old one."""
    return correlation_id_var.set(value)


def reset_correlation_id(token: Token[str | None]) -> None:
    correlation_id_var.reset(token)


def is_valid_correlation_id(value: str) -> bool:
    return _VALID_CORRELATION_ID.fullmatch(value) is not None


def correlation_headers() -> dict[str, str]:
    """Headers for a call to another service, so its log lines join this request's trail."""
    correlation_id = current_correlation_id()
    return {CORRELATION_ID_HEADER: correlation_id} if correlation_id else {}


# --- redaction --------------------------------------------------------------------------------------------

_AUTHORIZATION_VALUE: Final = re.compile(r"(?i)(authorization['\"]?\s*[:=,]\s*(?:b?['\"])?)[^'\"\r\n,;}\]]+")
_BEARER_CREDENTIAL: Final = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]+=*")
_JWT_LIKE: Final = re.compile(
    r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
    r"|\b[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"
)
SENSITIVE_KEYS: Final = frozenset(
    {"authorization", "password", "secret", "token", "access_token", "jwt_secret", "jwt_previous_secrets"}
)


class Redactor:
    """Scrubs credentials from text and from structured `extra` values before they reach any output."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is removed whole rather than leaving a tail.
        unique = sorted({secret for secret in secrets if secret}, key=len, reverse=True)
        self._secrets = re.compile("|".join(map(re.escape, unique))) if unique else None

    def redact(self, text: str) -> str:
        if self._secrets is not None:
            text = self._secrets.sub(REDACTED, text)
        text = _AUTHORIZATION_VALUE.sub(rf"\g<1>{REDACTED}", text)
        text = _BEARER_CREDENTIAL.sub(rf"\g<1>{REDACTED}", text)
        return _JWT_LIKE.sub(REDACTED, text)

    def redact_value(self, value: Any) -> Any:
        """Returns something JSON can encode, so no `default=str` fallback can smuggle unredacted text out."""
        if value is None or isinstance(value, bool | int):
            return value
        if isinstance(value, float):
            return value if math.isfinite(value) else str(value)
        if isinstance(value, Mapping):
            return {str(key): self._redact_item(str(key), item) for key, item in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self.redact_value(item) for item in value]
        if isinstance(value, bytes):
            return self.redact(value.decode("utf-8", errors="replace"))
        return self.redact(str(value))

    def _redact_item(self, key: str, value: Any) -> Any:
        return REDACTED if key.lower() in SENSITIVE_KEYS else self.redact_value(value)


def configured_secrets(settings: Settings) -> list[str]:
    """Every secret a service holds; any of them appearing in a log line would be a leak."""
    secrets = [settings.jwt_secret, *settings.jwt_previous_secrets]
    if settings.kafka_sasl_password:
        secrets.append(settings.kafka_sasl_password)
    if settings.database_url:
        database_password = urlsplit(settings.database_url).password
        if database_password:
            secrets.append(database_password)
    return secrets


_STANDARD_RECORD_FIELDS: Final = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "correlation_id",
}


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra=` a caller passed: whatever is on the record that logging itself did not put there."""
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD_RECORD_FIELDS}


class RedactionFilter(logging.Filter):
    """Rewrites the record itself, so every handler and formatter downstream sees only the redacted text."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        self._redact_message(record)
        for key, value in extra_fields(record).items():
            redacted = REDACTED if key.lower() in SENSITIVE_KEYS else self._redactor.redact_value(value)
            setattr(record, key, redacted)
        self._redact_exception(record)
        return True

    def _redact_message(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it for the handler's own error reporting
            return
        record.msg = self._redactor.redact(message)
        record.args = None

    def _redact_exception(self, record: logging.LogRecord) -> None:
        """Formatters reuse a cached `exc_text`, so caching the redacted traceback redacts it for all of them."""
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self._redactor.redact(record.stack_info)


class CorrelationIdFilter(logging.Filter):
    """Stamps the id when the record is made, not when it is formatted, which may be later on another thread."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "correlation_id", None) is None:
            record.correlation_id = current_correlation_id()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `extra` fields sit beside the fixed ones so they can be queried directly."""

    def __init__(self, service: str, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.service = service
        self._redactor = redactor or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        entry = self._fixed_fields(record)
        for key, value in extra_fields(record).items():
            entry[key if key not in entry else f"extra_{key}"] = self._redactor.redact_value(value)
        exception = self._exception_text(record)
        if exception:
            entry["exception"] = exception
        if record.stack_info:
            entry["stack"] = self._redactor.redact(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)

    def _fixed_fields(self, record: logging.LogRecord) -> dict[str, Any]:
        correlation_id = getattr(record, "correlation_id", None) or current_correlation_id()
        return {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": self._redactor.redact(record.getMessage()),
            "service": self.service,
            "correlation_id": self._redactor.redact_value(correlation_id),
        }

    def _exception_text(self, record: logging.LogRecord) -> str | None:
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        return self._redactor.redact(record.exc_text) if record.exc_text else None


class _AidtrailHandler(logging.StreamHandler[TextIO]):
    """A marker class, so calling configure_logging again replaces our handler instead of doubling lines."""


def parse_level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    levels = logging.getLevelNamesMapping()
    try:
        return levels[level.strip().upper()]
    except KeyError:
        raise ValueError(
            f"unknown log level {level!r} (AIDTRAIL_LOG_LEVEL); use one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
        ) from None


def configure_logging(
    service: str,
    level: str | int | None = None,
    *,
    settings: Settings | None = None,
    secrets: Iterable[str] | None = None,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Route all logging, uvicorn's included, through one redacting JSON handler on the root logger.

    `level` and `secrets` default to `settings` (or `get_settings()`); `stream` lets tests capture the output.
    """
    settings = settings or get_settings()
    resolved_level = parse_level(level if level is not None else settings.log_level)
    redactor = Redactor(secrets if secrets is not None else configured_secrets(settings))
    handler = _AidtrailHandler(stream or sys.stderr)
    handler.addFilter(CorrelationIdFilter())
    handler.addFilter(RedactionFilter(redactor))
    handler.setFormatter(JsonFormatter(service, redactor))
    _install_on_root(handler, resolved_level)
    return handler


def _install_on_root(handler: logging.Handler, level: int) -> None:
    root = logging.getLogger()
    for existing in [h for h in root.handlers if isinstance(h, _AidtrailHandler)]:
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _THIRD_PARTY_LOGGERS:
        third_party = logging.getLogger(name)
        third_party.handlers.clear()
        third_party.propagate = True


# --- ASGI middleware --------------------------------------------------------------------------------------


class CorrelationIdMiddleware:
    """Pure ASGI rather than BaseHTTPMiddleware, so streaming (SSE) responses keep the id for their whole life."""

    def __init__(self, app: ASGIApp, header_name: str = CORRELATION_ID_HEADER) -> None:
        self.app = app
        self.header_name = header_name
        self._header_key = header_name.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        correlation_id = self._incoming_id(scope) or new_correlation_id()
        scope.setdefault("state", {})["correlation_id"] = correlation_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                MutableHeaders(scope=message)[self.header_name] = correlation_id
            await send(message)

        token = set_correlation_id(correlation_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            reset_correlation_id(token)

    def _incoming_id(self, scope: Scope) -> str | None:
        """A caller's id is kept only if it is short and plain; anything else could forge or break log lines."""
        for key, value in scope.get("headers", []):
            if key.lower() == self._header_key:
                candidate = value.decode("latin-1").strip()
                return candidate if is_valid_correlation_id(candidate) else None
        return None
