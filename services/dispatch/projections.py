"""What dispatch learns from events: the sites a route may use and each recipient's facility.

The rows are the shared directory's (see `shared.projections.directory`): last registration wins, and replaying
the topic from offset zero into empty tables rebuilds exactly the same rows.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from services.dispatch.tables import directory
from shared.events.batch_events import Payload
from shared.events.envelope import Envelope
from shared.messaging.consumer import Handler


async def apply_reference_event(conn: AsyncConnection, envelope: Envelope, payload: Payload) -> None:
    """Other reference events (donors, pledges, needs, our own shipments) are not dispatch's concern here."""
    await directory.apply(conn, envelope, payload)


def reference_handler() -> Handler:
    return apply_reference_event
