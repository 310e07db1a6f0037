"""Repository functions for task and workflow definitions. Each takes an open connection,
so callers decide the transaction."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.dialects import DialectOps
from app.store.tables import task_defs, workflow_defs

Row = dict[str, Any]


async def upsert_task_def(
    conn: AsyncConnection, ops: DialectOps, name: str, body: Row, now_ms: int
) -> None:
    stmt = ops.upsert(
        task_defs,
        {"name": name, "body": body, "created_at": now_ms, "updated_at": None},
        keys=["name"],
        update=["body", "created_at", "updated_at"],
    )
    await conn.execute(stmt)


async def update_task_def(conn: AsyncConnection, name: str, body: Row, now_ms: int) -> bool:
    result = await conn.execute(
        sa.update(task_defs).where(task_defs.c.name == name).values(body=body, updated_at=now_ms)
    )
    return result.rowcount > 0


async def get_task_def(conn: AsyncConnection, name: str) -> Row | None:
    body = await conn.scalar(sa.select(task_defs.c.body).where(task_defs.c.name == name))
    return dict(body) if body is not None else None


async def list_task_defs(conn: AsyncConnection) -> list[Row]:
    rows = await conn.scalars(sa.select(task_defs.c.body).order_by(task_defs.c.name))
    return [dict(b) for b in rows]


async def delete_task_def(conn: AsyncConnection, name: str) -> bool:
    result = await conn.execute(sa.delete(task_defs).where(task_defs.c.name == name))
    return result.rowcount > 0


async def workflow_def_exists(conn: AsyncConnection, name: str, version: int) -> bool:
    found = await conn.scalar(
        sa.select(sa.literal(1)).where(
            workflow_defs.c.name == name, workflow_defs.c.version == version
        )
    )
    return found is not None


async def insert_workflow_def(
    conn: AsyncConnection, name: str, version: int, body: Row, now_ms: int
) -> None:
    await conn.execute(
        sa.insert(workflow_defs).values(
            name=name, version=version, body=body, created_at=now_ms, updated_at=None
        )
    )


async def replace_workflow_def(
    conn: AsyncConnection, name: str, version: int, body: Row, now_ms: int
) -> None:
    await conn.execute(
        sa.update(workflow_defs)
        .where(workflow_defs.c.name == name, workflow_defs.c.version == version)
        .values(body=body, updated_at=now_ms)
    )


async def get_workflow_def(conn: AsyncConnection, name: str, version: int | None) -> Row | None:
    query = sa.select(workflow_defs.c.body).where(workflow_defs.c.name == name)
    if version is None:
        query = query.order_by(workflow_defs.c.version.desc()).limit(1)
    else:
        query = query.where(workflow_defs.c.version == version)
    body = await conn.scalar(query)
    return dict(body) if body is not None else None


async def list_workflow_defs(conn: AsyncConnection) -> list[Row]:
    rows = await conn.scalars(
        sa.select(workflow_defs.c.body).order_by(workflow_defs.c.name, workflow_defs.c.version)
    )
    return [dict(b) for b in rows]


async def list_latest_workflow_defs(conn: AsyncConnection) -> list[Row]:
    latest = (
        sa.select(workflow_defs.c.name, sa.func.max(workflow_defs.c.version).label("version"))
        .group_by(workflow_defs.c.name)
        .subquery()
    )
    rows = await conn.scalars(
        sa.select(workflow_defs.c.body)
        .join(
            latest,
            sa.and_(
                workflow_defs.c.name == latest.c.name,
                workflow_defs.c.version == latest.c.version,
            ),
        )
        .order_by(workflow_defs.c.name)
    )
    return [dict(b) for b in rows]


async def list_workflow_versions(conn: AsyncConnection) -> list[Row]:
    rows = await conn.execute(
        sa.select(
            workflow_defs.c.name,
            workflow_defs.c.version,
            workflow_defs.c.created_at,
            workflow_defs.c.updated_at,
        ).order_by(workflow_defs.c.name, workflow_defs.c.version)
    )
    return [dict(r._mapping) for r in rows]


async def delete_workflow_def(conn: AsyncConnection, name: str, version: int) -> bool:
    result = await conn.execute(
        sa.delete(workflow_defs).where(
            workflow_defs.c.name == name, workflow_defs.c.version == version
        )
    )
    return result.rowcount > 0
