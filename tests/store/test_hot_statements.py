"""Hot statements (app.store.db.hot): on SQLite they run on the sqlite3 connection directly,
inside the same transactions as everything else; on Postgres they run on asyncpg directly in
single-statement units (autocommit) and take the normal path in transactions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa

from app.store.db import _RAW_CACHE, Database, _raw_for, hot
from app.store.tables import queue, schedules

_INSERT = hot(
    sa.insert(queue).values(
        queue_name=sa.bindparam("q"),
        item_id=sa.bindparam("i"),
        due_at=sa.bindparam("d"),
        priority=sa.bindparam("p"),
    )
)
_COUNT = hot(sa.select(sa.func.count()).select_from(queue))
_ITEMS = hot(
    sa.select(queue.c.item_id, queue.c.due_at)
    .where(queue.c.queue_name == sa.bindparam("q"))
    .order_by(queue.c.item_id)
)


def _row(i: str, due: int = 1) -> dict[str, Any]:
    return {"q": "hot", "i": i, "d": due, "p": 0}


async def _count(db: Database) -> int:
    async with db.read() as conn:
        return int(await conn.scalar(_COUNT) or 0)


async def test_hot_rows_come_back_as_tuples_in_statement_order(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(_INSERT, [_row("b", 2), _row("a", 1)])
    async with db.read() as conn:
        rows = (await conn.execute(_ITEMS, {"q": "hot"})).all()
        assert [tuple(r) for r in rows] == [("a", 1), ("b", 2)]
        assert list(await conn.scalars(_ITEMS, {"q": "hot"})) == ["a", "b"]


async def test_a_hot_first_statement_is_rolled_back_with_its_transaction(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.write() as conn:
            await conn.execute(_INSERT, _row("x"))
            raise RuntimeError("undo")
    assert await _count(db) == 0


async def test_a_hot_first_statement_of_a_unit_is_rolled_back_with_it(db: Database) -> None:
    async def failing(conn: Any) -> None:
        await conn.execute(_INSERT, _row("y"))
        raise RuntimeError("undo")

    with pytest.raises(RuntimeError):
        await db.run_write(failing)
    assert await _count(db) == 0


async def test_units_committed_together_keep_their_own_outcome(db: Database) -> None:
    def ok(item: str) -> Any:
        async def unit(conn: Any) -> str:
            await conn.execute(_INSERT, _row(item))
            return "ok"

        return unit

    async def failing(conn: Any) -> None:
        await conn.execute(_INSERT, _row("undone"))
        raise RuntimeError("undo")

    results = await asyncio.gather(
        db.run_write(ok("kept1")),
        db.run_write(failing),
        db.run_write(ok("kept2")),
        return_exceptions=True,
    )
    assert results[0] == results[2] == "ok" and isinstance(results[1], RuntimeError)
    async with db.read() as conn:
        assert list(await conn.scalars(_ITEMS, {"q": "hot"})) == ["kept1", "kept2"]


def test_a_statement_whose_values_need_converting_is_not_run_raw() -> None:
    from sqlalchemy.dialects import sqlite

    # schedules.paused is a Boolean: SQLite needs its values converted.
    needs_types = hot(sa.select(schedules.c.paused).where(schedules.c.name == sa.bindparam("n")))
    assert _raw_for(needs_types, sqlite.dialect()) is None
    assert _raw_for(_ITEMS, sqlite.dialect()) is not None
    assert _raw_for(sa.select(queue.c.item_id), sqlite.dialect()) is None  # not marked


async def test_values_a_hot_statement_carries_itself_are_bound_too(db: Database) -> None:
    # SQLite adds OFFSET with its own value 0 to a bound LIMIT.
    first = hot(
        sa.select(queue.c.item_id)
        .where(queue.c.queue_name == sa.bindparam("q"))
        .order_by(queue.c.item_id)
        .limit(sa.bindparam("n", type_=sa.Integer))
    )
    async with db.write() as conn:
        await conn.execute(_INSERT, [_row("a"), _row("b"), _row("c")])
    async with db.read() as conn:
        assert list(await conn.scalars(first, {"q": "hot", "n": 2})) == ["a", "b"]


async def test_statements_not_marked_hot_are_not_remembered(db: Database) -> None:
    before = len(_RAW_CACHE)
    async with db.read() as conn:
        for i in range(20):
            await conn.execute(sa.select(queue.c.item_id).where(queue.c.item_id == f"x{i}"))
    assert len(_RAW_CACHE) == before


def test_a_hot_statement_is_compiled_for_each_dialect_it_meets() -> None:
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.dialects.postgresql import asyncpg

    on_sqlite = _raw_for(_ITEMS, sqlite.dialect())
    on_postgres = _raw_for(_ITEMS, asyncpg.dialect())  # type: ignore[no-untyped-call]
    assert on_sqlite is not None and "?" in on_sqlite.sql
    assert on_postgres is not None and "$1" in on_postgres.sql


def _postgres_only(db: Database) -> None:
    if db.url.is_sqlite:
        pytest.skip("single-statement units are the Postgres path")


class _Executed:
    """Counts the statements that go through SQLAlchemy's execution path."""

    def __init__(self, db: Database) -> None:
        self.count = 0
        sa.event.listen(db._engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args: Any) -> None:
        self.count += 1


async def test_hot_statements_of_a_single_statement_unit_run_on_asyncpg(db: Database) -> None:
    _postgres_only(db)
    async with db.write() as conn:
        await conn.execute(_INSERT, [_row("b", 2), _row("a", 1)])
    executed = _Executed(db)
    async with db.single_statement_writes() as conn:
        rows = (await conn.execute(_ITEMS, {"q": "hot"})).all()
        names = list(await conn.scalars(_ITEMS, {"q": "hot"}))
        plain = (await conn.execute(sa.select(queue.c.item_id).order_by(queue.c.item_id))).all()
    assert [tuple(r) for r in rows] == [("a", 1), ("b", 2)]
    assert names == ["a", "b"]
    assert [tuple(r) for r in plain] == [("a",), ("b",)]
    assert executed.count == 1  # only the statement not marked hot


async def test_a_dead_connection_met_by_a_hot_statement_is_not_pooled_again(
    db: Database,
) -> None:
    _postgres_only(db)
    killer = Database(db.url, pool_size=1)
    try:
        with pytest.raises(Exception):  # noqa: B017 - asyncpg's own, not SQLAlchemy's
            async with db.single_statement_writes() as conn:
                pid = await conn.scalar(sa.text("SELECT pg_backend_pid()"))
                async with killer.write() as other:
                    await other.execute(sa.text(f"SELECT pg_terminate_backend({int(pid)})"))
                await conn.execute(_ITEMS, {"q": "hot"})
    finally:
        await killer.dispose()
    # The pool renewed the connection: the next unit works at once.
    async with db.single_statement_writes() as conn:
        assert (await conn.execute(_ITEMS, {"q": "hot"})).all() == []
