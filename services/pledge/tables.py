"""The pledge service's own read tables, written in the same transaction as the events they come from."""

import sqlalchemy as sa

# Its own metadata: several services define tables of the same name, and tests load them in one process.
metadata = sa.MetaData()

donors = sa.Table(
    "donors",
    metadata,
    sa.Column("donor_id", sa.String(120), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(200), nullable=False),
    sa.Column("country", sa.String(200)),
    sa.Column("registered_at", sa.String(40), nullable=False),
)

pledges = sa.Table(
    "pledges",
    metadata,
    sa.Column("pledge_id", sa.String(120), primary_key=True),
    sa.Column("donor_id", sa.String(120), nullable=False),
    sa.Column("purpose", sa.Text),
    sa.Column("funds_amount", sa.Float),
    sa.Column("funds_currency", sa.String(20)),
    sa.Column("lines", sa.Text, nullable=False),
    sa.Column("registered_at", sa.String(40), nullable=False),
)
