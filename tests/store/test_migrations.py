"""The migration history builds exactly the tables the code declares, on both databases."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from app.store.db import Database
from app.store.migrate import current_revision, downgrade, head_revision, upgrade
from app.store.tables import metadata


def _diff(connection: sa.Connection) -> list[Any]:
    ctx = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(ctx, metadata))


async def test_upgrade_head_matches_the_declared_tables(db: Database) -> None:
    async with db.write() as conn:
        diff = await conn.run_sync(_diff)
    assert diff == []


async def test_database_is_at_the_head_revision(db: Database) -> None:
    assert await current_revision(db) == head_revision()


async def test_downgrade_to_base_and_upgrade_again_round_trips(db: Database) -> None:
    await downgrade(db, "base")
    assert await current_revision(db) is None
    await upgrade(db)
    async with db.write() as conn:
        assert await conn.run_sync(_diff) == []


async def test_upgrade_is_idempotent(db: Database) -> None:
    await upgrade(db)
    assert await current_revision(db) == head_revision()
