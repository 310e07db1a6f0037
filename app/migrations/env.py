"""Alembic environment. Baton runs migrations itself (`baton migrate`, `baton serve`) and
hands over an open connection; the plain `alembic` command works too, from BATON_DATABASE_URL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from app.store.tables import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,  # SQLite ALTERs go through table copies
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_from_settings() -> None:
    from app.config import Settings
    from app.store.db import Database

    async def go() -> None:
        db = Database(Settings().database)
        try:
            async with db.write() as conn:
                await conn.run_sync(_run)
        finally:
            await db.dispose()

    asyncio.run(go())


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    _run_from_settings()
