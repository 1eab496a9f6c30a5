"""The warehouse's own read tables: sites, the recipients and needs it learns from the reference topic, and the
allocations it derives from batch events.

They live in their own MetaData so that another service defining a table of the same name (the recipient service
keeps `recipients` and `needs` too) can never collide with them in one Python process, e.g. a test session.
"""

import sqlalchemy as sa

from shared.projections.directory import define_directory

metadata = sa.MetaData()

directory = define_directory(metadata, stamp="registered_at")
sites = directory.sites
recipients = directory.recipients

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
