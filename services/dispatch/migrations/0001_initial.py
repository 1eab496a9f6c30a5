"""dispatch: core tables, the sites and recipients it learns, and its shipments with their legs and batches.

Revision ID: dispatch_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from shared.store.core_migration import downgrade_core, upgrade_core

revision = "dispatch_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    upgrade_core()
    _create_reference_tables()
    _create_shipment_tables()


def _create_reference_tables() -> None:
    op.create_table(
        "sites",
        sa.Column("site_id", sa.String(120), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("city", sa.String(200)),
        sa.Column("country", sa.String(200)),
        sa.Column("recipient_id", sa.String(120)),
        sa.Column("updated_at", sa.String(40), nullable=False),
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
        sa.Column("updated_at", sa.String(40), nullable=False),
    )


def _create_shipment_tables() -> None:
    op.create_table(
        "shipments",
        sa.Column("shipment_id", sa.String(120), primary_key=True),
        sa.Column("recipient_id", sa.String(120), nullable=False, index=True),
        sa.Column("origin_site_id", sa.String(120), nullable=False),
        sa.Column("destination_site_id", sa.String(120), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, index=True),
        sa.Column("current_leg_no", sa.Integer, nullable=False),
        sa.Column("leg_count", sa.Integer, nullable=False),
        sa.Column("carrier", sa.String(200)),
        sa.Column("vehicle", sa.String(200)),
        sa.Column("handed_over", sa.Boolean, nullable=False),
        sa.Column("planned_event_id", sa.String(36), nullable=False),
        sa.Column("planned_by", sa.String(200), nullable=False),
        sa.Column("planned_at", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "shipment_legs",
        sa.Column("shipment_id", sa.String(120), primary_key=True),
        sa.Column("leg_no", sa.Integer, primary_key=True),
        sa.Column("from_site_id", sa.String(120), nullable=False, index=True),
        sa.Column("to_site_id", sa.String(120), nullable=False, index=True),
        sa.Column("carrier", sa.String(200), nullable=False),
        sa.Column("vehicle", sa.String(200)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("actual_carrier", sa.String(200)),
        sa.Column("actual_vehicle", sa.String(200)),
        sa.Column("departed_at", sa.String(40)),
        sa.Column("arrived_at", sa.String(40)),
    )
    op.create_table(
        "shipment_batches",
        sa.Column("shipment_id", sa.String(120), primary_key=True),
        sa.Column("batch_id", sa.String(120), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        # A batch ships once: delivered and written-off batches are final and there is no cancelling a plan, so
        # this also keeps two concurrent plans from putting one batch on two open shipments.
        sa.UniqueConstraint("batch_id", name="uq_shipment_batches_batch"),
    )


def downgrade() -> None:
    op.drop_table("shipment_batches")
    op.drop_table("shipment_legs")
    op.drop_table("shipments")
    op.drop_table("recipients")
    op.drop_table("sites")
    downgrade_core()
