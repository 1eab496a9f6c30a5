"""Alembic operations that create the tables of `schema.py`; every service's first migration calls them.

Written out with `op.create_table` rather than `metadata.create_all`, so that later migrations can alter them
step by step and a production database is only ever changed by a reviewed migration.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shared.store import schema


def _copy_columns(table: sa.Table) -> list[sa.Column[object]]:
    return [column._copy() for column in table.columns]


def _copy_constraints(table: sa.Table) -> list[sa.UniqueConstraint]:
    uniques = [c for c in table.constraints if isinstance(c, sa.UniqueConstraint) and c.name]
    return [sa.UniqueConstraint(*c.columns.keys(), name=c.name) for c in uniques]


CORE_TABLES = (
    schema.events,
    schema.outbox,
    schema.chain_head,
    schema.consumer_positions,
    schema.processed_events,
    schema.parked_events,
    schema.idempotency_keys,
    schema.relay_lease,
    schema.dead_letter_actions,
)


def upgrade_core() -> None:
    for table in CORE_TABLES:
        op.create_table(table.name, *_copy_columns(table), *_copy_constraints(table))
    op.create_index("ix_outbox_unsent", "outbox", ["sent_at", "id"])
    op.create_index("ix_events_type", "events", ["event_type"])
    op.create_index("ix_parked_stream", "parked_events", ["consumer", "stream_id"])
    op.create_index("ix_dead_letter_actions_parked", "dead_letter_actions", ["parked_id"])
    _create_batch_view()


def _create_batch_view() -> None:
    from shared.projections.batch_view import VIEW_INDEXES, batch_view

    op.create_table(batch_view.name, *_copy_columns(batch_view))
    for name, columns in VIEW_INDEXES.items():
        op.create_index(name, batch_view.name, columns)


def downgrade_core() -> None:
    op.drop_table("batch_view")
    op.drop_index("ix_dead_letter_actions_parked", "dead_letter_actions")
    op.drop_index("ix_parked_stream", "parked_events")
    op.drop_index("ix_events_type", "events")
    op.drop_index("ix_outbox_unsent", "outbox")
    for table in reversed(CORE_TABLES):
        op.drop_table(table.name)
