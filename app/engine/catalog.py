"""Registered task definitions as the engine needs them: fetched in the caller's
transaction and cached briefly, since every scheduling step looks them up."""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncConnection

from app.schemas.metadata import TaskDef
from app.store import metadata as repo

# Short enough that an edit made through another process is seen within seconds.
TTL_SECONDS = 2.0


class TaskDefCache:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, TaskDef | None]] = {}

    def invalidate(self, name: str | None = None) -> None:
        if name is None:
            self._entries.clear()
        else:
            self._entries.pop(name, None)

    async def get_many(self, conn: AsyncConnection, names: Iterable[str]) -> dict[str, TaskDef]:
        now = time.monotonic()
        found: dict[str, TaskDef] = {}
        for name in set(names):
            entry = self._entries.get(name)
            if entry is None or now - entry[0] > TTL_SECONDS:
                body = await repo.get_task_def(conn, name)
                entry = (now, TaskDef.model_validate(body) if body is not None else None)
                self._entries[name] = entry
            if entry[1] is not None:
                found[name] = entry[1]
        return found
