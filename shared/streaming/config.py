"""Tuning of the SSE stream, from environment variables with the prefix AIDTRAIL_STREAM_.

Every number here bounds something: how long a silent connection waits for a sign of life, how much one
client may hold in memory, how many clients one process serves. docs/streaming.md explains each.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class StreamConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIDTRAIL_STREAM_", extra="ignore", frozen=True)

    heartbeat_seconds: float = Field(
        default=15.0,
        gt=0,
        description="A `: ping` comment after this long without an event, so proxies keep "
        "the connection open and a client can tell a quiet stream from a dead one.",
    )
    buffer_size: int = Field(
        default=1000,
        ge=1,
        description="Events one client may have queued but not yet sent (asyncio.Queue).",
    )
    overflow_grace_seconds: float = Field(
        default=10.0,
        ge=0,
        description="How long the reader waits for room in a full buffer before it ends "
        "the stream with `event: overflow`; 0 ends it as soon as the buffer is full.",
    )
    send_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A single write blocked this long drops the connection (a dead peer).",
    )
    max_clients: int = Field(default=64, ge=1, description="Open streams per process; more get 503.")
    retry_ms: int = Field(default=3000, ge=0, description="The `retry:` reconnect delay suggested to clients.")
    max_partition_fetch_bytes: int = Field(default=256 * 1024, ge=1024, description="Kafka fetch per partition.")
    fetch_max_bytes: int = Field(default=1024 * 1024, ge=1024, description="Kafka fetch per request.")
