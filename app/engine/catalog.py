"""Registered task definitions as the engine needs them: every scheduling step looks them
up (by the names in the workflow, or by a name only known at run time, as DYNAMIC tasks
have), so the engine keeps a snapshot of all of them, refreshed every few seconds and
dropped at once when this process changes one."""

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
        self._snapshot: dict[str, TaskDef] | None = None
        self._loaded_at = 0.0

    def invalidate(self, _name: str | None = None) -> None:
        self._snapshot = None

    async def snapshot(self, conn: AsyncConnection) -> dict[str, TaskDef]:
        snapshot = self._snapshot
        if snapshot is None or time.monotonic() - self._loaded_at > TTL_SECONDS:
            snapshot = {
                str(body["name"]): TaskDef.model_validate(body)
                for body in await repo.list_task_defs(conn)
            }
            self._snapshot = snapshot
            self._loaded_at = time.monotonic()
        return snapshot

    async def get_many(self, conn: AsyncConnection, names: Iterable[str]) -> dict[str, TaskDef]:
        snapshot = await self.snapshot(conn)
        return {name: snapshot[name] for name in names if name in snapshot}
