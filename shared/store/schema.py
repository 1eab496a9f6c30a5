"""Tables every service's database has: its event store, outbox, hash-chain head, consumer positions,
idempotency records, the outbox relay's lease and the log of what operators did with parked events. Service
read models add their own tables in their own migrations.

This metadata describes the tables for queries; the tables themselves are created by Alembic migrations
(`shared/store/core_migration.py`), never by `create_all` on a production path.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY, PostgreSQL wants BIGINT for logs that grow forever.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

events = sa.Table(
    "events",
    metadata,
    sa.Column("position", BigId, primary_key=True, autoincrement=True),
    sa.Column("stream_id", sa.String(120), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("event_id", sa.String(36), nullable=False, unique=True),
    sa.Column("event_type", sa.String(200), nullable=False),
    sa.Column("source", sa.String(60), nullable=False),
    sa.Column("time", sa.String(40), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("correlation_id", sa.String(64), nullable=False),
    sa.Column("causation_id", sa.String(64)),
    sa.Column("sequence", sa.BigInteger),
    sa.Column("prev_hash", sa.String(64)),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("local", sa.Boolean, nullable=False),
    sa.UniqueConstraint("stream_id", "version", name="uq_events_stream_version"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(200), nullable=False, unique=True),
    sa.Column("topic", sa.String(200), nullable=False),
    sa.Column("key", sa.String(120), nullable=False),
    sa.Column("headers", sa.Text, nullable=False),
    sa.Column("value", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("sent_at", sa.String(40)),
)

chain_head = sa.Table(
    "chain_head",
    metadata,
    sa.Column("source", sa.String(60), primary_key=True),
    sa.Column("sequence", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

consumer_positions = sa.Table(
    "consumer_positions",
    metadata,
    sa.Column("consumer", sa.String(120), primary_key=True),
    sa.Column("topic", sa.String(200), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True),
    sa.Column("next_offset", sa.BigInteger, nullable=False),
)

processed_events = sa.Table(
    "processed_events",
    metadata,
    sa.Column("consumer", sa.String(120), primary_key=True),
    sa.Column("event_id", sa.String(64), primary_key=True),
)

parked_events = sa.Table(
    "parked_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("consumer", sa.String(120), nullable=False),
    sa.Column("stream_id", sa.String(200), nullable=False),
    sa.Column("topic", sa.String(200), nullable=False),
    sa.Column("partition", sa.Integer, nullable=False),
    sa.Column("offset", sa.BigInteger, nullable=False),
    sa.Column("event_id", sa.String(64)),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("headers", sa.Text, nullable=False),
    sa.Column("value", sa.LargeBinary),
    sa.Column("parked_at", sa.String(40), nullable=False),
    sa.Column("blocking", sa.Boolean, nullable=False),
)

relay_lease = sa.Table(
    "relay_lease",
    metadata,
    sa.Column("name", sa.String(120), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("renewed_at", sa.Float, nullable=False),
    sa.Column("epoch", sa.BigInteger, nullable=False),
)

dead_letter_actions = sa.Table(
    "dead_letter_actions",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("parked_id", sa.BigInteger, nullable=False),
    sa.Column("consumer", sa.String(120), nullable=False),
    sa.Column("stream_id", sa.String(200), nullable=False),
    sa.Column("action", sa.String(30), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("record", sa.Text, nullable=False),
    sa.Column("at", sa.String(40), nullable=False),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("principal", sa.String(200), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
)
