"""warehouse: core tables, sites, recipients, needs and allocations.

Revision ID: warehouse_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from shared.store.core_migration import downgrade_core, upgrade_core

revision = "warehouse_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    upgrade_core()
    op.create_table(
        "sites",
        sa.Column("site_id", sa.String(120), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False, index=True),
        sa.Column("city", sa.String(200)),
        sa.Column("country", sa.String(200)),
        sa.Column("recipient_id", sa.String(120)),
        sa.Column("registered_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "recipients",
        sa.Column("recipient_id", sa.String(120), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("frontline", sa.Boolean, nullable=False),
        sa.Column("site_id", sa.String(120), nullable=False),
        sa.Column("city", sa.String(200)),
        sa.Column("country", sa.String(200)),
        sa.Column("registered_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "needs",
        sa.Column("need_id", sa.String(120), primary_key=True),
        sa.Column("recipient_id", sa.String(120), nullable=False, index=True),
        sa.Column("item", sa.String(120), nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("priority", sa.String(20), nullable=False),
        sa.Column("deadline", sa.String(40)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("quantity_received", sa.BigInteger),
        sa.Column("registered_at", sa.String(40), nullable=False),
    )
    op.create_index("ix_needs_item_status", "needs", ["item", "status"])
    op.create_table(
        "allocations",
        sa.Column("allocation_id", sa.String(120), primary_key=True),
        sa.Column("batch_id", sa.String(120), nullable=False, index=True),
        sa.Column("root_batch_id", sa.String(120)),
        sa.Column("need_id", sa.String(120), nullable=False, index=True),
        sa.Column("recipient_id", sa.String(120), nullable=False, index=True),
        sa.Column("item", sa.String(120), nullable=False),
        sa.Column("site_id", sa.String(120)),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("allocations")
    op.drop_index("ix_needs_item_status", "needs")
    op.drop_table("needs")
    op.drop_table("recipients")
    op.drop_table("sites")
    downgrade_core()
