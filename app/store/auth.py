"""Repository functions for applications, their roles, access keys and server keys. Each
takes an open connection, so callers decide the transaction."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.dialects import DialectOps
from app.store.tables import access_keys, application_roles, applications, server_keys

Row = dict[str, Any]


# -- applications -----------------------------------------------------------------------


async def insert_application(
    conn: AsyncConnection, app_id: str, name: str, user: str | None, now_ms: int
) -> None:
    await conn.execute(
        sa.insert(applications).values(
            id=app_id,
            name=name,
            created_by=user,
            updated_by=user,
            created_at=now_ms,
            updated_at=now_ms,
        )
    )


async def get_application(conn: AsyncConnection, app_id: str) -> Row | None:
    row = (await conn.execute(sa.select(applications).where(applications.c.id == app_id))).first()
    return dict(row._mapping) if row is not None else None


async def get_application_by_name(conn: AsyncConnection, name: str) -> Row | None:
    row = (await conn.execute(sa.select(applications).where(applications.c.name == name))).first()
    return dict(row._mapping) if row is not None else None


async def list_applications(conn: AsyncConnection) -> list[Row]:
    rows = await conn.execute(
        sa.select(applications).order_by(applications.c.name, applications.c.id)
    )
    return [dict(r._mapping) for r in rows]


async def any_application(conn: AsyncConnection) -> bool:
    found = await conn.scalar(sa.select(applications.c.id).limit(1))
    return found is not None


async def rename_application(
    conn: AsyncConnection, app_id: str, name: str, user: str | None, now_ms: int
) -> bool:
    result = await conn.execute(
        sa.update(applications)
        .where(applications.c.id == app_id)
        .values(name=name, updated_by=user, updated_at=now_ms)
    )
    return result.rowcount > 0


async def touch_application(
    conn: AsyncConnection, app_id: str, user: str | None, now_ms: int
) -> None:
    await conn.execute(
        sa.update(applications)
        .where(applications.c.id == app_id)
        .values(updated_by=user, updated_at=now_ms)
    )


async def delete_application(conn: AsyncConnection, app_id: str) -> bool:
    # Explicit deletes rather than relying on ON DELETE CASCADE alone.
    await conn.execute(sa.delete(access_keys).where(access_keys.c.application_id == app_id))
    await conn.execute(
        sa.delete(application_roles).where(application_roles.c.application_id == app_id)
    )
    result = await conn.execute(sa.delete(applications).where(applications.c.id == app_id))
    return result.rowcount > 0


# -- roles ------------------------------------------------------------------------------


async def roles_of(conn: AsyncConnection, app_id: str) -> list[str]:
    rows = await conn.scalars(
        sa.select(application_roles.c.role)
        .where(application_roles.c.application_id == app_id)
        .order_by(application_roles.c.role)
    )
    return list(rows)


async def roles_by_application(conn: AsyncConnection) -> dict[str, list[str]]:
    rows = await conn.execute(
        sa.select(application_roles.c.application_id, application_roles.c.role).order_by(
            application_roles.c.role
        )
    )
    out: dict[str, list[str]] = {}
    for app_id, role in rows:
        out.setdefault(app_id, []).append(role)
    return out


async def add_role(conn: AsyncConnection, ops: DialectOps, app_id: str, role: str) -> None:
    # A no-op update on conflict: adding a role twice is not an error.
    await conn.execute(
        ops.upsert(
            application_roles,
            {"application_id": app_id, "role": role},
            keys=["application_id", "role"],
            update=["role"],
        )
    )


async def remove_role(conn: AsyncConnection, app_id: str, role: str) -> bool:
    result = await conn.execute(
        sa.delete(application_roles).where(
            application_roles.c.application_id == app_id, application_roles.c.role == role
        )
    )
    return result.rowcount > 0


# -- access keys ------------------------------------------------------------------------


async def insert_access_key(
    conn: AsyncConnection, key_id: str, app_id: str, secret_hash: str, now_ms: int
) -> None:
    await conn.execute(
        sa.insert(access_keys).values(
            id=key_id,
            application_id=app_id,
            secret_hash=secret_hash,
            status="ACTIVE",
            created_at=now_ms,
        )
    )


async def get_access_key(conn: AsyncConnection, key_id: str) -> Row | None:
    row = (await conn.execute(sa.select(access_keys).where(access_keys.c.id == key_id))).first()
    return dict(row._mapping) if row is not None else None


async def list_access_keys(conn: AsyncConnection, app_id: str) -> list[Row]:
    rows = await conn.execute(
        sa.select(access_keys.c.id, access_keys.c.status, access_keys.c.created_at)
        .where(access_keys.c.application_id == app_id)
        .order_by(access_keys.c.created_at, access_keys.c.id)
    )
    return [dict(r._mapping) for r in rows]


async def set_access_key_status(conn: AsyncConnection, key_id: str, status: str) -> None:
    await conn.execute(
        sa.update(access_keys).where(access_keys.c.id == key_id).values(status=status)
    )


async def set_access_key_secret(conn: AsyncConnection, key_id: str, secret_hash: str) -> None:
    await conn.execute(
        sa.update(access_keys).where(access_keys.c.id == key_id).values(secret_hash=secret_hash)
    )


async def delete_access_key(conn: AsyncConnection, key_id: str) -> bool:
    result = await conn.execute(sa.delete(access_keys).where(access_keys.c.id == key_id))
    return result.rowcount > 0


# -- server keys ------------------------------------------------------------------------


async def get_server_key(conn: AsyncConnection, name: str) -> str | None:
    value: str | None = await conn.scalar(
        sa.select(server_keys.c.value).where(server_keys.c.name == name)
    )
    return value


async def insert_server_key(conn: AsyncConnection, name: str, value: str, now_ms: int) -> None:
    await conn.execute(sa.insert(server_keys).values(name=name, value=value, created_at=now_ms))
