"""The dispatch service's own read tables, written in the same transaction as the events they come from.

They live in their own MetaData rather than the shared one: several services keep tables with the same name
(every service may know `sites`), and in one process (tests, tools) their definitions must not collide.
"""

import sqlalchemy as sa

from shared.projections.directory import define_directory

metadata = sa.MetaData()

directory = define_directory(metadata, stamp="updated_at")
sites = directory.sites
recipients = directory.recipients

shipments = sa.Table(
    "shipments",
    metadata,
    sa.Column("shipment_id", sa.String(120), primary_key=True),
    sa.Column("recipient_id", sa.String(120), nullable=False),
    sa.Column("origin_site_id", sa.String(120), nullable=False),
    sa.Column("destination_site_id", sa.String(120), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
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

shipment_legs = sa.Table(
    "shipment_legs",
    metadata,
    sa.Column("shipment_id", sa.String(120), primary_key=True),
    sa.Column("leg_no", sa.Integer, primary_key=True),
    sa.Column("from_site_id", sa.String(120), nullable=False),
    sa.Column("to_site_id", sa.String(120), nullable=False),
    sa.Column("carrier", sa.String(200), nullable=False),
    sa.Column("vehicle", sa.String(200)),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("actual_carrier", sa.String(200)),
    sa.Column("actual_vehicle", sa.String(200)),
    sa.Column("departed_at", sa.String(40)),
    sa.Column("arrived_at", sa.String(40)),
)

shipment_batches = sa.Table(
    "shipment_batches",
    metadata,
    sa.Column("shipment_id", sa.String(120), primary_key=True),
    sa.Column("batch_id", sa.String(120), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.UniqueConstraint("batch_id", name="uq_shipment_batches_batch"),
)
