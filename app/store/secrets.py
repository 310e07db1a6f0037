"""Repository functions for secrets: sealed values, kept versions, the audit trail, tags and
grants. Each takes an open connection, so callers decide the transaction. Values here are
always sealed tokens; sealing and opening happen in app.secrets.service."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.dialects import DialectOps
from app.store.tables import secret_audit, secret_grants, secret_tags, secret_versions, secrets

Row = dict[str, Any]


# -- current values ---------------------------------------------------------------------


async def get_secret(
    conn: AsyncConnection, name: str, *, lock: DialectOps | None = None
) -> Row | None:
    """The secret's row; with `lock`, locked for the rest of the transaction (Postgres)."""
    query = sa.select(secrets).where(secrets.c.name == name)
    if lock is not None:
        query = lock.lock_rows(query)
    row = (await conn.execute(query)).first()
    return dict(row._mapping) if row is not None else None


async def get_secrets(conn: AsyncConnection, names: list[str]) -> list[Row]:
    if not names:
        return []
    rows = await conn.execute(sa.select(secrets).where(secrets.c.name.in_(names)))
    return [dict(r._mapping) for r in rows]


async def exists(conn: AsyncConnection, name: str) -> bool:
    found = await conn.scalar(sa.select(secrets.c.name).where(secrets.c.name == name))
    return found is not None


async def list_names(conn: AsyncConnection) -> list[str]:
    return list(await conn.scalars(sa.select(secrets.c.name).order_by(secrets.c.name)))


async def insert_secret(conn: AsyncConnection, row: Row) -> None:
    await conn.execute(sa.insert(secrets).values(**row))


async def update_secret(conn: AsyncConnection, name: str, values: Row) -> None:
    await conn.execute(sa.update(secrets).where(secrets.c.name == name).values(**values))


async def delete_secret(conn: AsyncConnection, name: str) -> bool:
    """The secret, its kept versions and its tags (its audit trail and grants stay)."""
    await conn.execute(sa.delete(secret_versions).where(secret_versions.c.name == name))
    await conn.execute(sa.delete(secret_tags).where(secret_tags.c.name == name))
    result = await conn.execute(sa.delete(secrets).where(secrets.c.name == name))
    return result.rowcount > 0


async def set_sealed_value(conn: AsyncConnection, name: str, version: int, value: str) -> None:
    """Replace a sealed value by the same value sealed again (rekey)."""
    await conn.execute(
        sa.update(secrets)
        .where(secrets.c.name == name, secrets.c.version == version)
        .values(value=value)
    )


# -- versions ---------------------------------------------------------------------------


async def insert_version(conn: AsyncConnection, row: Row) -> None:
    await conn.execute(sa.insert(secret_versions).values(**row))


async def prune_versions(conn: AsyncConnection, name: str, keep_from: int) -> None:
    """Drop versions older than `keep_from`."""
    await conn.execute(
        sa.delete(secret_versions).where(
            secret_versions.c.name == name, secret_versions.c.version < keep_from
        )
    )


async def list_versions(conn: AsyncConnection, name: str) -> list[Row]:
    """Newest first, without values."""
    rows = await conn.execute(
        sa.select(
            secret_versions.c.version,
            secret_versions.c.created_at,
            secret_versions.c.written_by,
            secret_versions.c.workflow_id,
        )
        .where(secret_versions.c.name == name)
        .order_by(secret_versions.c.version.desc())
    )
    return [dict(r._mapping) for r in rows]


async def get_version(conn: AsyncConnection, name: str, version: int) -> Row | None:
    row = (
        await conn.execute(
            sa.select(secret_versions).where(
                secret_versions.c.name == name, secret_versions.c.version == version
            )
        )
    ).first()
    return dict(row._mapping) if row is not None else None


async def previous_version(conn: AsyncConnection, name: str, before: int) -> Row | None:
    row = (
        await conn.execute(
            sa.select(secret_versions)
            .where(secret_versions.c.name == name, secret_versions.c.version < before)
            .order_by(secret_versions.c.version.desc())
            .limit(1)
        )
    ).first()
    return dict(row._mapping) if row is not None else None


async def all_sealed_versions(conn: AsyncConnection) -> list[Row]:
    """(name, version, value) of every kept version, the current ones included."""
    rows = await conn.execute(
        sa.select(secret_versions.c.name, secret_versions.c.version, secret_versions.c.value)
    )
    return [dict(r._mapping) for r in rows]


async def sealed_of(conn: AsyncConnection, name: str) -> tuple[Row | None, list[Row]]:
    """The secret's row and its versions' (version, value), for re-sealing."""
    current = await get_secret(conn, name)
    rows = await conn.execute(
        sa.select(secret_versions.c.version, secret_versions.c.value).where(
            secret_versions.c.name == name
        )
    )
    return current, [dict(r._mapping) for r in rows]


async def set_version_value(conn: AsyncConnection, name: str, version: int, value: str) -> None:
    await conn.execute(
        sa.update(secret_versions)
        .where(secret_versions.c.name == name, secret_versions.c.version == version)
        .values(value=value)
    )


# -- audit ------------------------------------------------------------------------------


async def add_audit(conn: AsyncConnection, rows: list[Row]) -> None:
    if rows:
        await conn.execute(sa.insert(secret_audit), rows)


async def list_audit(conn: AsyncConnection, name: str, limit: int) -> list[Row]:
    rows = await conn.execute(
        sa.select(secret_audit)
        .where(secret_audit.c.name == name)
        .order_by(secret_audit.c.id.desc())
        .limit(limit)
    )
    return [dict(r._mapping) for r in rows]


async def highest_audited_version(conn: AsyncConnection, name: str) -> int:
    """The highest version this name ever had, so a re-created secret continues numbering
    (an old ETag must never match a new incarnation)."""
    found = await conn.scalar(
        sa.select(sa.func.max(secret_audit.c.version)).where(secret_audit.c.name == name)
    )
    return int(found or 0)


# -- tags -------------------------------------------------------------------------------


async def get_tags(conn: AsyncConnection, name: str) -> list[Row]:
    rows = await conn.execute(
        sa.select(secret_tags.c.key, secret_tags.c.value)
        .where(secret_tags.c.name == name)
        .order_by(secret_tags.c.key)
    )
    return [dict(r._mapping) for r in rows]


async def tags_by_name(conn: AsyncConnection) -> dict[str, list[Row]]:
    rows = await conn.execute(
        sa.select(secret_tags.c.name, secret_tags.c.key, secret_tags.c.value).order_by(
            secret_tags.c.name, secret_tags.c.key
        )
    )
    out: dict[str, list[Row]] = {}
    for name, key, value in rows:
        out.setdefault(name, []).append({"key": key, "value": value})
    return out


async def upsert_tags(
    conn: AsyncConnection, ops: DialectOps, name: str, tags: Iterable[tuple[str, str]]
) -> None:
    for key, value in tags:
        await conn.execute(
            ops.upsert(
                secret_tags,
                {"name": name, "key": key, "value": value},
                keys=["name", "key"],
                update=["value"],
            )
        )


async def delete_tags(conn: AsyncConnection, name: str, tags: Iterable[tuple[str, str]]) -> None:
    for key, value in tags:
        await conn.execute(
            sa.delete(secret_tags).where(
                secret_tags.c.name == name, secret_tags.c.key == key, secret_tags.c.value == value
            )
        )


# -- grants -----------------------------------------------------------------------------


async def add_grants(
    conn: AsyncConnection,
    ops: DialectOps,
    name: str,
    subject_type: str,
    subject_id: str,
    access: Iterable[str],
) -> None:
    for item in access:
        values: dict[str, object] = {
            "name": name,
            "subject_type": subject_type,
            "subject_id": subject_id,
            "access": item,
        }
        await conn.execute(ops.upsert(secret_grants, values, keys=list(values), update=["access"]))


async def remove_grants(
    conn: AsyncConnection, name: str, subject_type: str, subject_id: str, access: Iterable[str]
) -> None:
    await conn.execute(
        sa.delete(secret_grants).where(
            secret_grants.c.name == name,
            secret_grants.c.subject_type == subject_type,
            secret_grants.c.subject_id == subject_id,
            secret_grants.c.access.in_(list(access)),
        )
    )


async def grants_on(conn: AsyncConnection, name: str) -> list[Row]:
    rows = await conn.execute(
        sa.select(secret_grants)
        .where(secret_grants.c.name == name)
        .order_by(secret_grants.c.access, secret_grants.c.subject_type, secret_grants.c.subject_id)
    )
    return [dict(r._mapping) for r in rows]


async def granted_access(
    conn: AsyncConnection, subjects: list[tuple[str, str]], names: list[str] | None = None
) -> dict[str, set[str]]:
    """name -> access types granted to any of `subjects` ((type, id) pairs), optionally
    only for `names`."""
    if not subjects:
        return {}
    query = sa.select(secret_grants.c.name, secret_grants.c.access).where(
        sa.or_(
            *(
                sa.and_(secret_grants.c.subject_type == t, secret_grants.c.subject_id == i)
                for t, i in subjects
            )
        )
    )
    if names is not None:
        if not names:
            return {}
        query = query.where(secret_grants.c.name.in_(names))
    out: dict[str, set[str]] = {}
    for name, access in await conn.execute(query):
        out.setdefault(name, set()).add(access)
    return out
