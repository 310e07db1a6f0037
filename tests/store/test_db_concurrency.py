"""The store under concurrency: many readers and writers at once neither deadlock nor fail."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
import sqlalchemy.ext.asyncio

from app.store.db import Database


async def test_many_concurrent_reads_and_writes_all_complete(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(sa.text("CREATE TABLE IF NOT EXISTS t_conc (n INTEGER)"))

    async def read() -> int:
        async with db.read() as conn:
            await asyncio.sleep(0.001)  # hold the connection across a suspension
            value = await conn.scalar(sa.text("SELECT count(*) FROM t_conc"))
            return int(value or 0)

    async def write(n: int) -> None:
        async with db.write() as conn:
            await conn.execute(sa.text("INSERT INTO t_conc (n) VALUES (:n)"), {"n": n})

    jobs = [read() for _ in range(64)] + [write(n) for n in range(16)]
    await asyncio.wait_for(asyncio.gather(*jobs), timeout=30)
    assert await read() == 16


class Refused(Exception):
    pass


async def _table(db: Database, name: str) -> None:
    async with db.write() as conn:
        await conn.execute(sa.text(f"CREATE TABLE IF NOT EXISTS {name} (n INTEGER)"))


async def _values(db: Database, name: str) -> list[int]:
    async with db.read() as conn:
        return sorted(int(v) for v in await conn.scalars(sa.text(f"SELECT n FROM {name}")))


async def test_concurrent_units_each_commit_or_roll_back_on_their_own(db: Database) -> None:
    """Units that queue for the writer may share one commit (SQLite group commit); a unit
    that fails takes back only its own writes, and each caller hears its own outcome."""
    await _table(db, "t_units")

    async def unit(n: int) -> int:
        async def work(conn: sa.ext.asyncio.AsyncConnection) -> int:
            await conn.execute(sa.text("INSERT INTO t_units (n) VALUES (:n)"), {"n": n})
            if n % 3 == 0:
                raise Refused(str(n))
            return n * 10

        return await db.run_write(work)

    results = await asyncio.wait_for(
        asyncio.gather(*(unit(n) for n in range(1, 31)), return_exceptions=True), timeout=30
    )
    for n, result in zip(range(1, 31), results, strict=True):
        if n % 3 == 0:
            assert isinstance(result, Refused) and str(result) == str(n)
        else:
            assert result == n * 10
    assert await _values(db, "t_units") == [n for n in range(1, 31) if n % 3]


async def test_sqlite_units_run_one_after_another_each_seeing_the_last(db: Database) -> None:
    if db.dialect != "sqlite":
        pytest.skip("Postgres runs write transactions side by side, under row locks")
    await _table(db, "t_seen")

    async def insert_then_count(n: int) -> int:
        async def work(conn: sa.ext.asyncio.AsyncConnection) -> int:
            await conn.execute(sa.text("INSERT INTO t_seen (n) VALUES (:n)"), {"n": n})
            return int(await conn.scalar(sa.text("SELECT count(*) FROM t_seen")) or 0)

        return await db.run_write(work)

    counts = await asyncio.gather(*(insert_then_count(n) for n in range(20)))
    assert sorted(counts) == list(range(1, 21))  # one at a time, each after the last
