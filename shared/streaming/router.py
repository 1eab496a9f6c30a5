"""`GET /events/stream`: the batch and reference events as Server-Sent Events, for apps that don't speak Kafka.

Authentication is the services' bearer token, in the `Authorization` header or, for browsers' EventSource
(which cannot set headers), in `?access_token=`. recipient_staff see only what concerns their recipient;
dispatcher, operator, auditor and admin see everything; donors are refused (they have the pledge service's
`/donors/{id}/batches`). docs/streaming.md is the guide for client authors.
"""

from __future__ import annotations

from typing import Annotated, Literal

from aiokafka import TopicPartition
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse

from shared.settings import Settings
from shared.streaming import position
from shared.streaming.config import StreamConfig
from shared.streaming.filters import EventFilter
from shared.streaming.reader import StreamReader, StreamStats
from shared.streaming.stream import stream_events
from shared.web.auth import (
    AuthError,
    Principal,
    Role,
    bearer_token,
    decode_token,
    ensure_recipient_access,
    ensure_role,
    forbidden,
    get_auth_settings,
    unauthenticated,
)
from shared.web.errors import error_body

STREAM_ROLES = frozenset({Role.dispatcher, Role.operator, Role.auditor, Role.recipient_staff})
STATS_ATTRIBUTE = "stream_stats"
AppSettings = Annotated[Settings, Depends(get_auth_settings)]


def stream_stats(app_state: object) -> StreamStats:
    """The app's stream counters (open streams, overflows, peak buffer), created on first use."""
    stats = getattr(app_state, STATS_ATTRIBUTE, None)
    if stats is None:
        stats = StreamStats()
        setattr(app_state, STATS_ATTRIBUTE, stats)
    assert isinstance(stats, StreamStats)
    return stats


async def stream_principal(
    request: Request,
    settings: AppSettings,
    access_token: Annotated[
        str | None, Query(description="The bearer token, for EventSource clients that cannot send headers.")
    ] = None,
) -> Principal:
    header = request.headers.get("authorization")
    token = bearer_token(header) if header or not access_token else access_token.strip()
    try:
        principal = decode_token(token, settings)
    except AuthError as exc:
        raise unauthenticated(exc.message) from None
    ensure_role(principal, STREAM_ROLES, "follow the event stream")
    return principal


def visible_to(principal: Principal, wanted_recipient: str | None) -> EventFilter | None:
    """What a token may see, as a filter the client's own filters are ANDed with; None means everything."""
    if principal.role is not Role.recipient_staff:
        return None
    if not principal.recipient_id:
        raise forbidden("this recipient_staff token names no recipient; mint it with `--recipient <id>`")
    if wanted_recipient:
        ensure_recipient_access(principal, wanted_recipient)
    return EventFilter(recipient_id=principal.recipient_id)


def resume_position(last_event_id: str | None, settings: Settings) -> dict[TopicPartition, int] | None:
    if not last_event_id:
        return None
    return position.decode(last_event_id, position.TopicCodes(settings.batch_topic, settings.reference_topic))


def make_stream_router(config: StreamConfig | None = None) -> APIRouter:
    """A router with its own tuning; the module-level `router` reads AIDTRAIL_STREAM_* from the environment."""
    tuning = config or StreamConfig()
    router = APIRouter(tags=["stream"])

    @router.get(
        "/events/stream",
        summary="Follow batch and reference events as Server-Sent Events (resumable with Last-Event-ID).",
        response_class=EventSourceResponse,
        responses={200: {"content": {"text/event-stream": {}}}, 400: {}, 503: {}},
    )
    async def follow_events(
        request: Request,
        principal: Annotated[Principal, Depends(stream_principal)],
        settings: AppSettings,
        event_type: Annotated[
            list[str] | None, Query(alias="type", description="ce_type, or a prefix ending in '.'; repeatable")
        ] = None,
        batch_id: str | None = None,
        shipment_id: str | None = None,
        site_id: str | None = None,
        recipient_id: str | None = None,
        start_at: Annotated[Literal["earliest", "latest"], Query(alias="from")] = "latest",
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
        last_event_id_param: Annotated[str | None, Query(alias="last_event_id")] = None,
    ) -> Response:
        wanted = EventFilter(tuple(event_type or ()), batch_id, shipment_id, site_id, recipient_id)
        visible = visible_to(principal, recipient_id)
        reader = StreamReader(settings, tuning, wanted, stream_stats(request.app.state), visible)
        try:
            resume = resume_position(last_event_id or last_event_id_param, settings)
        except position.InvalidPosition as exc:
            return JSONResponse(error_body("invalid_last_event_id", str(exc)), status_code=400)
        if reader.stats.open_streams >= tuning.max_clients:
            body = error_body("too_many_streams", f"this process serves {tuning.max_clients} streams; retry later")
            return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
        return EventSourceResponse(
            stream_events(reader, resume, start_at, tuning),
            ping=0,  # our own heartbeats: they are ordered with the events, so they may carry a position
            send_timeout=tuning.send_timeout_seconds,
        )

    return router


router = make_stream_router()
