"""Runs a service's Alembic migrations against its own database, programmatically.

The environment (`alembic/env.py`) is shared; each service keeps only its version files. On PostgreSQL an
advisory lock keeps two replicas that start together from migrating at once.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from shared.store.database import Database

ALEMBIC_DIR = Path(__file__).resolve().parent / "alembic"
MIGRATION_LOCK_ID = 7_420_001


def alembic_config(versions_dir: Path, connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    config.set_main_option("version_locations", str(versions_dir))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: sa.Connection, versions_dir: Path) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
    command.upgrade(alembic_config(versions_dir, connection), "head")


async def upgrade(database: Database, versions_dir: Path) -> None:
    async with database.writer.begin() as connection:
        await connection.run_sync(_upgrade, versions_dir)
