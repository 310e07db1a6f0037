"""Repository functions for event handlers and pending event actions. Each takes an open
connection, so callers decide the transaction."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.secrets.sealing import open_value, seal_value
from app.store.tables import event_actions, event_handlers

Row = dict[str, Any]


async def handler_exists(conn: AsyncConnection, name: str) -> bool:
    found = await conn.scalar(sa.select(sa.literal(1)).where(event_handlers.c.name == name))
    return found is not None


async def insert_handler(
    conn: AsyncConnection, name: str, event: str, active: bool, body: Row, now_ms: int
) -> None:
    await conn.execute(
        sa.insert(event_handlers).values(
            name=name, event=event, active=active, body=body, created_at=now_ms, updated_at=None
        )
    )


async def update_handler(
    conn: AsyncConnection, name: str, event: str, active: bool, body: Row, now_ms: int
) -> bool:
    result = await conn.execute(
        sa.update(event_handlers)
        .where(event_handlers.c.name == name)
        .values(event=event, active=active, body=body, updated_at=now_ms)
    )
    return result.rowcount > 0


async def delete_handler(conn: AsyncConnection, name: str) -> bool:
    result = await conn.execute(sa.delete(event_handlers).where(event_handlers.c.name == name))
    return result.rowcount > 0


async def list_handlers(conn: AsyncConnection) -> list[Row]:
    rows = await conn.scalars(sa.select(event_handlers.c.body).order_by(event_handlers.c.name))
    return [dict(b) for b in rows]


async def handlers_for_event(conn: AsyncConnection, event: str, active_only: bool) -> list[Row]:
    query = sa.select(event_handlers.c.body).where(event_handlers.c.event == event)
    if active_only:
        query = query.where(event_handlers.c.active.is_(True))
    rows = await conn.scalars(query.order_by(event_handlers.c.name))
    return [dict(b) for b in rows]


async def insert_action(conn: AsyncConnection, action_id: str, payload: Row, now_ms: int) -> None:
    await conn.execute(
        sa.insert(event_actions).values(
            id=action_id, payload=seal_value(payload), created_at=now_ms
        )
    )


async def get_action(conn: AsyncConnection, action_id: str) -> Row | None:
    payload = await conn.scalar(
        sa.select(event_actions.c.payload).where(event_actions.c.id == action_id)
    )
    return dict(open_value(payload)) if payload is not None else None


async def delete_action(conn: AsyncConnection, action_id: str) -> bool:
    result = await conn.execute(sa.delete(event_actions).where(event_actions.c.id == action_id))
    return result.rowcount > 0
