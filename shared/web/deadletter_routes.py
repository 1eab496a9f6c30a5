"""Admin routes of every service: its parked events (list, show, fix, replay, discard) and its relay lease.

`aidtrail deadletter ...` is the command-line face of these routes. Changing anything is for the admin role;
auditors may look (list, show, relay status), because what was parked, fixed or thrown away is part of the record
they check. Every change is logged with the caller's actor in `dead_letter_actions`.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.domain.errors import Conflict, NotFound
from shared.messaging import parking
from shared.messaging.parking import ParkedRecord, RecordFix, ReplayResult, ReplayTarget
from shared.messaging.relay_lease import RelayLease, relay_lease_name
from shared.web.auth import Principal, Role, require_roles
from shared.web.pagination import Page, PageParams, page_params
from shared.web.runtime import ServiceRuntime, get_runtime

router = APIRouter(prefix="/admin", tags=["dead letters"])
VIEWERS = require_roles(Role.auditor, Role.admin)
ADMINS = require_roles(Role.admin)
# Bounded so a huge id is a 422, not an integer the database driver cannot bind (a 500).
ParkedId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The parked event's id, from GET /admin/parked.")]


class ParkedSummary(BaseModel):
    id: int
    consumer: str
    stream_id: str
    topic: str
    partition: int
    offset: int
    event_id: str | None
    event_type: str | None = Field(description="The record's ce_type header, if it had one.")
    reason: str
    parked_at: str


class ActionOut(BaseModel):
    action: str
    actor: str
    note: str
    at: str


class ParkedDetail(ParkedSummary):
    headers: list[tuple[str, str]]
    value_json: Any = Field(None, description="The payload, if it is valid JSON.")
    value_text: str | None = Field(None, description="The payload as text (invalid UTF-8 replaced).")
    value_base64: str | None = Field(None, description="The payload exactly, base64-encoded.")
    history: list[ActionOut]


class FixIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: dict[str, Any] | None = Field(None, description="The corrected payload, a JSON object.")
    value_text: str | None = Field(None, max_length=1_000_000, description="Or the corrected payload as raw text.")
    headers: dict[str, str | None] = Field(default_factory=dict, description="Headers to set; null removes one.")
    note: str = Field("", max_length=2000, description="Why; kept in the action log.")

    @model_validator(mode="after")
    def _one_change(self) -> FixIn:
        if self.value is not None and self.value_text is not None:
            raise ValueError("give the corrected payload either as value (JSON) or as value_text, not both")
        if self.value is None and self.value_text is None and not self.headers:
            raise ValueError("nothing to fix: give value, value_text or headers")
        try:  # checked here, so a payload orjson cannot write is a 422, not a 500 in to_fix
            orjson.dumps(self.value)
        except orjson.JSONEncodeError as exc:
            raise ValueError(f"value cannot be stored as JSON ({exc}); numbers must fit in 64 bits") from None
        return self

    def to_fix(self) -> RecordFix:
        value = orjson.dumps(self.value) if self.value is not None else None
        if self.value_text is not None:
            value = self.value_text.encode()
        return RecordFix(value=value, headers=self.headers, note=self.note)


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stream_id: str = Field(min_length=1, max_length=200)
    consumer: str | None = Field(None, description="Only this consumer's parked events (default: every consumer).")


class StillParked(BaseModel):
    id: int
    reason: str


class ReplayOut(BaseModel):
    consumer: str
    stream_id: str
    applied: list[int]
    duplicates: list[int]
    still_parked: list[StillParked]
    unparked: bool


class DiscardIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=3, max_length=2000, description="Why this event is given up; kept in the log.")


class DiscardOut(BaseModel):
    discarded: ParkedSummary
    still_parked_in_stream: int


class RelayStatus(BaseModel):
    name: str
    owner: str | None = Field(description="The replica holding the lease, if any ever did.")
    expires_in: float | None = Field(description="Seconds until the lease expires (negative: expired).")
    epoch: int | None = Field(description="Grows by one at every change of owner.")
    this_replica: str
    held_here: bool = Field(description="Whether this replica's relay publishes now.")
    published_here: int


def _summary(record: ParkedRecord) -> ParkedSummary:
    event_type = next((value for name, value in record.headers if name == "ce_type"), None)
    return ParkedSummary(
        id=record.id,
        consumer=record.consumer,
        stream_id=record.stream_id,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        event_id=record.event_id,
        event_type=event_type,
        reason=record.reason,
        parked_at=record.parked_at,
    )


def _json_or_none(value: bytes) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return None


def _detail(record: ParkedRecord, history: list[dict[str, Any]]) -> ParkedDetail:
    value = record.value
    return ParkedDetail(
        **_summary(record).model_dump(),
        headers=record.headers,
        value_json=None if value is None else _json_or_none(value),
        value_text=None if value is None else value.decode(errors="replace"),
        value_base64=None if value is None else base64.b64encode(value).decode(),
        history=[ActionOut(**entry) for entry in history],
    )


def _targets(runtime: ServiceRuntime) -> dict[str, ReplayTarget]:
    """Each consumer of this service, with the running consumer's own handler (or one built the same way)."""
    running = {consumer.name: consumer for consumer in runtime.consumers}
    targets = {}
    for spec in runtime.spec.consumers:
        name = runtime.consumer_name(spec)
        handler = running[name].handler if name in running else spec.handler(runtime)
        targets[name] = ReplayTarget(name, handler, runtime.store.lock_writes)
    return targets


def _unpark(runtime: ServiceRuntime, consumer: str, stream_id: str) -> None:
    """Spare the running consumer a database check; replicas find out through theirs."""
    for running in runtime.consumers:
        if running.name == consumer:
            running.unpark(stream_id)


def _replay_out(result: ReplayResult) -> ReplayOut:
    return ReplayOut(
        consumer=result.consumer,
        stream_id=result.stream_id,
        applied=result.applied,
        duplicates=result.duplicates,
        still_parked=[StillParked(id=parked_id, reason=reason) for parked_id, reason in result.still_parked],
        unparked=result.unparked,
    )


@router.get("/parked", response_model=Page[ParkedSummary], summary="Parked events, in the order a replay applies them.")
async def list_parked(
    stream_id: str | None = Query(None, description="Only this stream (batch id)."),
    consumer: str | None = Query(None, description="Only this consumer."),
    page: PageParams = Depends(page_params),
    _: Principal = Depends(VIEWERS),
    runtime: ServiceRuntime = Depends(get_runtime),
) -> Page[ParkedSummary]:
    records, total = await parking.list_parked(
        runtime.database, consumer=consumer, stream_id=stream_id, limit=page.limit, offset=page.offset
    )
    return Page.of([_summary(record) for record in records], total, page)


@router.get("/parked/{parked_id}", response_model=ParkedDetail, summary="One parked event: record, reason, history.")
async def show_parked(
    parked_id: ParkedId, _: Principal = Depends(VIEWERS), runtime: ServiceRuntime = Depends(get_runtime)
) -> ParkedDetail:
    record, history = await parking.get_parked(runtime.database, parked_id)
    return _detail(record, history)


@router.post("/parked/{parked_id}/fix", response_model=ParkedDetail, summary="Correct a parked record.")
async def fix_parked(
    parked_id: ParkedId,
    body: FixIn,
    principal: Principal = Depends(ADMINS),
    runtime: ServiceRuntime = Depends(get_runtime),
) -> ParkedDetail:
    await parking.fix_parked(runtime.database, parked_id, body.to_fix(), principal.actor)
    record, history = await parking.get_parked(runtime.database, parked_id)
    return _detail(record, history)


@router.post(
    "/parked/replay",
    response_model=list[ReplayOut],
    summary="Apply a stream's parked events in order; what still fails stays parked with its new reason.",
)
async def replay_parked(
    body: ReplayIn, principal: Principal = Depends(ADMINS), runtime: ServiceRuntime = Depends(get_runtime)
) -> list[ReplayOut]:
    consumers = [body.consumer] if body.consumer else await parking.parked_consumers(runtime.database, body.stream_id)
    if not consumers:
        raise NotFound(f"nothing of stream {body.stream_id} is parked; list parked events with GET /admin/parked")
    targets = _targets(runtime)
    unknown = [name for name in consumers if name not in targets]
    if unknown:
        raise Conflict(f"this service has no consumer {', '.join(unknown)}; its consumers: {', '.join(targets)}")
    results = []
    for name in consumers:
        result = await parking.replay_stream(runtime.database, targets[name], body.stream_id, principal.actor)
        if result.unparked:
            _unpark(runtime, name, body.stream_id)
        results.append(_replay_out(result))
    return results


@router.post("/parked/{parked_id}/discard", response_model=DiscardOut, summary="Give up on one event, with a reason.")
async def discard_parked(
    parked_id: ParkedId,
    body: DiscardIn,
    principal: Principal = Depends(ADMINS),
    runtime: ServiceRuntime = Depends(get_runtime),
) -> DiscardOut:
    record, remaining = await parking.discard_parked(
        runtime.database, parked_id, body.reason, principal.actor, runtime.store.lock_writes
    )
    if remaining == 0:
        _unpark(runtime, record.consumer, record.stream_id)
    return DiscardOut(discarded=_summary(record), still_parked_in_stream=remaining)


@router.get("/relay", response_model=RelayStatus, summary="Which replica's outbox relay publishes (holds the lease).")
async def relay_status(_: Principal = Depends(VIEWERS), runtime: ServiceRuntime = Depends(get_runtime)) -> RelayStatus:
    relay = runtime.relay
    lease = relay.lease if relay is not None and relay.lease is not None else None
    status = await (lease or RelayLease(runtime.database, relay_lease_name(runtime.spec.name))).status()
    return RelayStatus(
        name=status.name,
        owner=status.owner,
        expires_in=status.expires_in,
        epoch=status.epoch,
        this_replica=status.this_replica,
        held_here=status.held_here,
        published_here=relay.published if relay is not None else 0,
    )
