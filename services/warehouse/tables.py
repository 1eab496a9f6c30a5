"""The warehouse's own read tables: sites, the recipients and needs it learns from the reference topic, and the
allocations it derives from batch events.

They live in their own MetaData so that another service defining a table of the same name (the recipient service
keeps `recipients` and `needs` too) can never collide with them in one Python process, e.g. a test session.
"""

import sqlalchemy as sa

metadata = sa.MetaData()

sites = sa.Table(
    "sites",
    metadata,
    sa.Column("site_id", sa.String(120), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(30), nullable=False),
    sa.Column("city", sa.String(200)),
    sa.Column("country", sa.String(200)),
    sa.Column("recipient_id", sa.String(120)),
    sa.Column("registered_at", sa.String(40), nullable=False),
)

recipients = sa.Table(
    "recipients",
    metadata,
    sa.Column("recipient_id", sa.String(120), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(30), nullable=False),
    sa.Column("frontline", sa.Boolean, nullable=False),
    sa.Column("site_id", sa.String(120), nullable=False),
    sa.Column("city", sa.String(200)),
    sa.Column("country", sa.String(200)),
    sa.Column("registered_at", sa.String(40), nullable=False),
)

needs = sa.Table(
    "needs",
    metadata,
    sa.Column("need_id", sa.String(120), primary_key=True),
    sa.Column("recipient_id", sa.String(120), nullable=False),
    sa.Column("item", sa.String(120), nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("priority", sa.String(20), nullable=False),
    sa.Column("deadline", sa.String(40)),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("quantity_received", sa.BigInteger),
    sa.Column("registered_at", sa.String(40), nullable=False),
)

allocations = sa.Table(
    "allocations",
    metadata,
    sa.Column("allocation_id", sa.String(120), primary_key=True),
    sa.Column("batch_id", sa.String(120), nullable=False),
    sa.Column("root_batch_id", sa.String(120)),
    sa.Column("need_id", sa.String(120), nullable=False),
    sa.Column("recipient_id", sa.String(120), nullable=False),
    sa.Column("item", sa.String(120), nullable=False),
    sa.Column("site_id", sa.String(120)),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
)
