"""Registered definitions as the engine needs them, cached: every scheduling step looks task
definitions up (by the names in the workflow, or by a name only known at run time, as DYNAMIC
tasks have), and every start reads its workflow definition. Both caches are refreshed every
few seconds and dropped at once when this process changes a definition."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncConnection

from app.schemas.metadata import TaskDef, WorkflowDef
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


# Enough for every definition a deployment runs; past it the cache starts over.
MAX_WORKFLOW_DEFS = 1000


class WorkflowDefCache:
    """(name, version or latest) -> the parsed definition and its stored JSON text. Misses
    are not cached: a definition registered a moment ago is found at once."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, int | None], tuple[float, WorkflowDef, str]] = {}
        self._generation = 0

    def invalidate(self) -> None:
        self._generation += 1
        self._entries.clear()

    async def get(
        self, conn: AsyncConnection, name: str, version: int | None
    ) -> tuple[WorkflowDef, str] | None:
        key = (name, version)
        hit = self._entries.get(key)
        now = time.monotonic()
        if hit is not None and now - hit[0] <= TTL_SECONDS:
            return hit[1], hit[2]
        generation = self._generation
        body = await repo.get_workflow_def(conn, name, version)
        if body is None:
            return None
        definition = WorkflowDef.model_validate(body)
        text = json.dumps(definition.to_json(), separators=(",", ":"))
        # A change committed while we were reading must not be shadowed by what we read.
        if generation == self._generation:
            if len(self._entries) >= MAX_WORKFLOW_DEFS:
                self._entries.clear()
            self._entries[key] = (now, definition, text)
        return definition, text
