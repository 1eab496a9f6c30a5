"""pledge: core tables, donors and pledges.

Revision ID: pledge_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from shared.store.core_migration import downgrade_core, upgrade_core

revision = "pledge_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    upgrade_core()
    op.create_table(
        "donors",
        sa.Column("donor_id", sa.String(120), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(200), nullable=False),
        sa.Column("country", sa.String(200)),
        sa.Column("registered_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "pledges",
        sa.Column("pledge_id", sa.String(120), primary_key=True),
        sa.Column("donor_id", sa.String(120), nullable=False, index=True),
        sa.Column("purpose", sa.Text),
        sa.Column("funds_amount", sa.Float),
        sa.Column("funds_currency", sa.String(20)),
        sa.Column("lines", sa.Text, nullable=False),
        sa.Column("registered_at", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("pledges")
    op.drop_table("donors")
    downgrade_core()
