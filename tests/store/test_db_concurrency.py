"""The store under concurrency: many readers and writers at once neither deadlock nor fail."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

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
