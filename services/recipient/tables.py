"""The recipient service's own read tables, written in the same transaction as the events they come from.

They live in a MetaData of their own rather than the shared one: every service's tables are described in the
same Python process during end-to-end tests, and another service keeping, say, its own `needs` lookup must not
collide with ours. The tables themselves are created by this service's migration, never by `create_all`.
"""

import sqlalchemy as sa

metadata = sa.MetaData()

recipients = sa.Table(
    "recipients",
    metadata,
    sa.Column("recipient_id", sa.String(120), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("frontline", sa.Boolean, nullable=False),
    sa.Column("site_id", sa.String(120), nullable=False, unique=True),
    sa.Column("city", sa.String(200), nullable=False),
    sa.Column("country", sa.String(2), nullable=False),
    sa.Column("registered_at", sa.String(40), nullable=False),
)

needs = sa.Table(
    "needs",
    metadata,
    sa.Column("need_id", sa.String(120), primary_key=True),
    sa.Column("recipient_id", sa.String(120), nullable=False),
    sa.Column("item", sa.String(120), nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("received", sa.BigInteger, nullable=False),
    sa.Column("priority", sa.String(20), nullable=False),
    sa.Column("priority_rank", sa.Integer, nullable=False),
    sa.Column("deadline", sa.String(40)),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("registered_at", sa.String(40), nullable=False),
    sa.Column("fulfilled_at", sa.String(40)),
)

need_receipts = sa.Table(
    "need_receipts",
    metadata,
    sa.Column("batch_id", sa.String(120), primary_key=True),
    sa.Column("need_id", sa.String(120), nullable=False),
    sa.Column("quantity_received", sa.BigInteger, nullable=False),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("confirmed_at", sa.String(40), nullable=False),
)
