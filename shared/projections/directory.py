"""The directory of sites and recipients that the warehouse and dispatch services each learn from the reference topic.

Both keep the same two tables, filled by the same upserts, so they are defined once here on the service's own
MetaData (services keep separate MetaData so that tables of one name never collide in one process). The only
difference between the services is the name of the time column, fixed by their migrations: the warehouse calls
it `registered_at`, dispatch `updated_at`.

Each event overwrites the row it names (last registration wins) and nothing else, so applying the same events
again, or replaying the topic from offset zero into empty tables, rebuilds exactly the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.events import reference_events as ref
from shared.events.batch_events import Payload
from shared.events.envelope import Envelope, format_time


@dataclass(frozen=True)
class Directory:
    """The two tables as one service defines them, and the name of their time column."""

    sites: sa.Table
    recipients: sa.Table
    stamp: str

    def site_row(self, site: ref.SiteRegistered, stamped_at: str) -> dict[str, Any]:
        """Also used by a route that registers a site, so it writes the row the consumer would build."""
        return {
            "site_id": site.site_id,
            "name": site.name,
            "kind": site.kind.value,
            "city": site.city,
            "country": site.country,
            "recipient_id": site.recipient_id,
            self.stamp: stamped_at,
        }

    def recipient_row(self, recipient: ref.RecipientRegistered, stamped_at: str) -> dict[str, Any]:
        return {
            "recipient_id": recipient.recipient_id,
            "name": recipient.name,
            "kind": recipient.kind.value,
            "frontline": recipient.frontline,
            "site_id": recipient.site_id,
            "city": recipient.city,
            "country": recipient.country,
            self.stamp: stamped_at,
        }

    async def apply(self, conn: AsyncConnection, envelope: Envelope, payload: Payload) -> bool:
        """True when the event was a directory event, so a caller's own dispatch can skip its other cases."""
        stamped_at = format_time(envelope.time)
        if isinstance(payload, ref.SiteRegistered):
            await upsert(conn, self.sites, "site_id", self.site_row(payload, stamped_at))
            return True
        if isinstance(payload, ref.RecipientRegistered):
            await upsert(conn, self.recipients, "recipient_id", self.recipient_row(payload, stamped_at))
            return True
        return False


def define_directory(metadata: sa.MetaData, stamp: str) -> Directory:
    """The columns must stay as the services' migrations create them; only the time column's name varies."""
    sites = sa.Table(
        "sites",
        metadata,
        sa.Column("site_id", sa.String(120), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("city", sa.String(200)),
        sa.Column("country", sa.String(200)),
        sa.Column("recipient_id", sa.String(120)),
        sa.Column(stamp, sa.String(40), nullable=False),
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
        sa.Column(stamp, sa.String(40), nullable=False),
    )
    return Directory(sites=sites, recipients=recipients, stamp=stamp)


async def upsert(conn: AsyncConnection, table: sa.Table, key: str, row: dict[str, Any]) -> None:
    """Update-then-insert: portable across SQLite and PostgreSQL, and safe inside the consumer's transaction."""
    column = table.c[key]
    updated = await conn.execute(table.update().where(column == row[key]).values(**row))
    if updated.rowcount == 0:
        await conn.execute(table.insert().values(**row))
