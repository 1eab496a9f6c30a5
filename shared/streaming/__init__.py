"""Server-Sent Events for apps that don't speak Kafka: `GET /events/stream`, filtered, scoped and resumable.

Mount `router` (or `make_stream_router(StreamConfig(...))`) into a service's routers; each open stream reads
the topics with its own Kafka consumer, and its SSE ids are exact positions, so any process can resume it.
"""

from shared.streaming.config import StreamConfig
from shared.streaming.router import make_stream_router, router, stream_stats

__all__ = ["StreamConfig", "make_stream_router", "router", "stream_stats"]
