"""Apply Alembic migrations from inside Baton (no alembic.ini needed at run time)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from app.store.db import Database

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# Any fixed number: every Baton process takes the same lock before migrating, so several
# processes starting at once on one Postgres migrate one at a time.
_PG_MIGRATION_LOCK = 7_314_002


def alembic_config(connection: sa.Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: sa.Connection, revision: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
    command.upgrade(alembic_config(connection), revision)


def _downgrade(connection: sa.Connection, revision: str) -> None:
    command.downgrade(alembic_config(connection), revision)


def _current(connection: sa.Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(db: Database, revision: str = "head") -> None:
    async with db.write() as conn:
        await conn.run_sync(_upgrade, revision)


async def downgrade(db: Database, revision: str) -> None:
    async with db.write() as conn:
        await conn.run_sync(_downgrade, revision)


async def current_revision(db: Database) -> str | None:
    async with db.write() as conn:
        return await conn.run_sync(_current)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
