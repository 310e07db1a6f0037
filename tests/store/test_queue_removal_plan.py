"""Finishing a task removes its queue item by id alone (store.remove_items); that must not
scan the whole queue: every worker task update does it, with thousands of items queued."""

from __future__ import annotations

import sqlalchemy as sa

from app.store.db import Database


async def test_removing_a_queue_item_by_id_uses_the_item_index(db: Database) -> None:
    explain = "EXPLAIN QUERY PLAN" if db.url.is_sqlite else "EXPLAIN"
    async with db.read() as conn:
        if not db.url.is_sqlite:  # a tiny table is scanned anyway unless told otherwise
            await conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
        statement = sa.text(f"{explain} DELETE FROM queue WHERE item_id = :id")
        plan = " ".join(str(row) for row in (await conn.execute(statement, {"id": "x"})).all())
    assert "ix_queue_item_id" in plan
