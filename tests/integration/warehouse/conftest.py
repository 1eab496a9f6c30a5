"""The warehouse service in-process, against the real broker, on SQLite and on PostgreSQL.

Pledged batches, recipients and needs are produced straight onto the test's topics as real CloudEvents, which is
how the warehouse learns them in production, without depending on the pledge and recipient services.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.harness import ServiceHandle, running_service, service_settings
from tests.integration.warehouse.support import topics_ready


@pytest.fixture
async def warehouse(database_url: str, topic_prefix: str, kafka_bootstrap: str) -> AsyncIterator[ServiceHandle]:
    settings = service_settings("warehouse", database_url, topic_prefix, kafka_bootstrap)
    await topics_ready(settings)
    async with running_service("warehouse", settings) as handle:
        yield handle
