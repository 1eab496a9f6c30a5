"""What dispatch learns from events: the sites a route may use, each recipient's facility, and the batches.

Each event overwrites the row it names (last registration wins) and nothing else, so applying the same events
again, or replaying the topic from offset zero into empty tables, rebuilds exactly the same rows.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.dispatch.tables import recipients, sites
from shared.events import reference_events as ref
from shared.events.batch_events import Payload
from shared.events.envelope import Envelope, format_time
from shared.messaging.consumer import Handler


async def apply_reference_event(conn: AsyncConnection, envelope: Envelope, payload: Payload) -> None:
    """Other reference events (donors, pledges, needs, our own shipments) are not dispatch's concern here."""
    updated_at = format_time(envelope.time)
    if isinstance(payload, ref.SiteRegistered):
        await _upsert(conn, sites, sites.c.site_id, _site_row(payload, updated_at))
    elif isinstance(payload, ref.RecipientRegistered):
        await _upsert(conn, recipients, recipients.c.recipient_id, _recipient_row(payload, updated_at))


def reference_handler() -> Handler:
    return apply_reference_event


def _site_row(site: ref.SiteRegistered, updated_at: str) -> dict[str, Any]:
    return {
        "site_id": site.site_id,
        "name": site.name,
        "kind": site.kind.value,
        "city": site.city,
        "country": site.country,
        "recipient_id": site.recipient_id,
        "updated_at": updated_at,
    }


def _recipient_row(recipient: ref.RecipientRegistered, updated_at: str) -> dict[str, Any]:
    return {
        "recipient_id": recipient.recipient_id,
        "name": recipient.name,
        "kind": recipient.kind.value,
        "frontline": recipient.frontline,
        "site_id": recipient.site_id,
        "city": recipient.city,
        "country": recipient.country,
        "updated_at": updated_at,
    }


async def _upsert(conn: AsyncConnection, table: sa.Table, key: sa.Column[Any], row: dict[str, Any]) -> None:
    """Update-then-insert works the same on SQLite and PostgreSQL; the consumer serialises writes per row."""
    updated = await conn.execute(table.update().where(key == row[key.name]).values(**row))
    if updated.rowcount == 0:
        await conn.execute(table.insert().values(**row))
