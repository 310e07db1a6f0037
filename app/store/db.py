"""Engines and transactions for both backends.

SQLite is single-writer: all writes go through one pooled connection that opens its
transactions with BEGIN IMMEDIATE, so writers queue in-process instead of failing with
SQLITE_BUSY mid-transaction; reads use a separate pool and never block on the writer (WAL).
Postgres uses one pool for both.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from app.errors import ConfigError
from app.store.dialects import DialectOps, dialect_ops
from app.store.urls import DatabaseURL

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _sqlite_engine(url: DatabaseURL, *, begin: str, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(
        url.url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=60,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN below is the one that runs.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql(begin)

    return engine


class Database:
    def __init__(self, url: DatabaseURL, *, pool_size: int = 10) -> None:
        self.url = url
        self.ops: DialectOps = dialect_ops(url.dialect)
        if url.is_sqlite:
            path = url.sqlite_path
            assert path is not None
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.writer = _sqlite_engine(url, begin="BEGIN IMMEDIATE", pool_size=1)
            self.reader = _sqlite_engine(url, begin="BEGIN", pool_size=min(pool_size, 4))
        else:
            self.writer = create_async_engine(
                url.url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )
            self.reader = self.writer

    @property
    def dialect(self) -> str:
        return self.url.dialect

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed when the block exits, rolled back on error."""
        async with self.writer.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only snapshot."""
        async with self.reader.connect() as conn:
            try:
                yield conn
            finally:
                await conn.rollback()

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()


async def check_reachable(db: Database, timeout_s: float = 10.0) -> None:
    """Fail with a one-line ConfigError when the database cannot be reached."""
    try:
        await asyncio.wait_for(db.ping(), timeout_s)
    except TimeoutError:
        raise ConfigError(
            f"cannot reach the database at {db.url.safe()}: timed out after {timeout_s:.0f}s"
        ) from None
    except Exception as exc:  # driver errors vary; all mean "not usable"
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        first = reason[0] if reason else type(exc).__name__
        raise ConfigError(f"cannot reach the database at {db.url.safe()}: {first}") from None
