"""recipient: core tables, recipients, needs and the receipts counted toward each need.

Revision ID: recipient_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from shared.store.core_migration import downgrade_core, upgrade_core

revision = "recipient_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    upgrade_core()
    op.create_table(
        "recipients",
        sa.Column("recipient_id", sa.String(120), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False, index=True),
        sa.Column("frontline", sa.Boolean, nullable=False),
        sa.Column("site_id", sa.String(120), nullable=False, unique=True),
        sa.Column("city", sa.String(200), nullable=False),
        sa.Column("country", sa.String(2), nullable=False, index=True),
        sa.Column("registered_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "needs",
        sa.Column("need_id", sa.String(120), primary_key=True),
        sa.Column("recipient_id", sa.String(120), nullable=False, index=True),
        sa.Column("item", sa.String(120), nullable=False, index=True),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("received", sa.BigInteger, nullable=False),
        sa.Column("priority", sa.String(20), nullable=False),
        sa.Column("priority_rank", sa.Integer, nullable=False),
        sa.Column("deadline", sa.String(40)),
        sa.Column("status", sa.String(20), nullable=False, index=True),
        sa.Column("registered_at", sa.String(40), nullable=False),
        sa.Column("fulfilled_at", sa.String(40)),
    )
    op.create_table(
        "need_receipts",
        sa.Column("batch_id", sa.String(120), primary_key=True),
        sa.Column("need_id", sa.String(120), nullable=False, index=True),
        sa.Column("quantity_received", sa.BigInteger, nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("confirmed_at", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("need_receipts")
    op.drop_table("needs")
    op.drop_table("recipients")
    downgrade_core()
