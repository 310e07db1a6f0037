"""Definitions: validation, Conductor's defaults and messages, persistence in one transaction."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from app.clock import Clock
from app.errors import Conflict, FieldError, NotFound, ValidationFailed
from app.schemas.metadata import BulkResponse, TaskDef, WorkflowDef
from app.services.validation import task_def_errors, workflow_def_errors
from app.store import metadata as repo
from app.store.db import Database

Json = dict[str, Any]


def _check_all(errors_per_item: list[list[FieldError]], indexed: bool) -> None:
    """Validate a whole request before writing any of it: one bad item fails them all."""
    found: list[FieldError] = []
    for i, errors in enumerate(errors_per_item):
        for e in errors:
            path = f"[{i}].{e.path}" if indexed else e.path
            found.append(FieldError(path, e.message, e.invalid_value))
    if found:
        raise ValidationFailed(found)


def _workflow_not_found(name: str, version: int | None) -> NotFound:
    shown = "null" if version is None else str(version)
    return NotFound(f"No such workflow found by name: {name}, version: {shown}")


class MetadataService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        # Called after a task definition changes, so caches in this process drop it at once.
        self.on_task_def_change: Callable[[str | None], None] = lambda _name: None
        # Called after a workflow definition is written or deleted (the engine caches them).
        self.on_workflow_def_change: Callable[[], None] = lambda: None

    # -- task definitions -------------------------------------------------------------

    async def register_task_defs(self, defs: list[TaskDef], user: str | None = None) -> None:
        if not defs:
            raise ValidationFailed([FieldError("taskDefs", "TaskDef list cannot be empty")])
        _check_all([task_def_errors(td) for td in defs], indexed=True)
        now = self.clock.now_ms()
        async with self.db.write() as conn:
            for td in defs:
                stored = td.model_copy(
                    update={
                        "createTime": now,
                        "createdBy": user,
                        "updateTime": None,
                        "updatedBy": None,
                    }
                )
                assert td.name is not None
                await repo.upsert_task_def(conn, self.db.ops, td.name, stored.to_json(), now)
        self.on_task_def_change(None)

    async def update_task_def(self, td: TaskDef, user: str | None = None) -> None:
        _check_all([task_def_errors(td)], indexed=False)
        assert td.name is not None
        now = self.clock.now_ms()
        async with self.db.write() as conn:
            existing = await repo.get_task_def(conn, td.name)
            if existing is None:
                raise NotFound(f"No such task by name {td.name}")
            stored = td.model_copy(
                update={
                    "createTime": existing.get("createTime"),
                    "createdBy": existing.get("createdBy"),
                    "updateTime": now,
                    "updatedBy": user,
                }
            )
            await repo.update_task_def(conn, td.name, stored.to_json(), now)
        self.on_task_def_change(td.name)

    async def get_task_def(self, name: str) -> Json:
        async with self.db.read() as conn:
            found = await repo.get_task_def(conn, name)
        if found is None:
            raise NotFound(f"No such taskType found by name: {name}")
        return found

    async def list_task_defs(self) -> list[Json]:
        async with self.db.read() as conn:
            return await repo.list_task_defs(conn)

    async def delete_task_def(self, name: str) -> None:
        async with self.db.write() as conn:
            if not await repo.delete_task_def(conn, name):
                raise NotFound(f"No such task definition: {name}")
        self.on_task_def_change(name)

    # -- workflow definitions ---------------------------------------------------------

    async def validate_workflow_def(self, wd: WorkflowDef) -> None:
        _check_all([workflow_def_errors(wd)], indexed=False)

    async def create_workflow_def(
        self, wd: WorkflowDef, overwrite: bool, user: str | None = None
    ) -> None:
        _check_all([workflow_def_errors(wd)], indexed=False)
        assert wd.name is not None
        now = self.clock.now_ms()
        async with self.db.write() as conn:
            existing = await repo.get_workflow_def(conn, wd.name, wd.version)
            if existing is not None and not overwrite:
                raise Conflict(f"Workflow with {wd.name}.{wd.version} already exists!")
            await self._put(conn, wd, existing, now, user)
        self.on_workflow_def_change()

    async def upsert_workflow_defs(
        self, defs: list[WorkflowDef], user: str | None = None
    ) -> BulkResponse:
        if not defs:
            raise ValidationFailed(
                [FieldError("workflowDefs", "WorkflowDef list name cannot be null or empty")]
            )
        _check_all([workflow_def_errors(wd) for wd in defs], indexed=True)
        now = self.clock.now_ms()
        result = BulkResponse()
        async with self.db.write() as conn:
            for wd in defs:
                assert wd.name is not None
                existing = await repo.get_workflow_def(conn, wd.name, wd.version)
                await self._put(conn, wd, existing, now, user)
                result.bulkSuccessfulResults.append(wd.name)
        self.on_workflow_def_change()
        return result

    async def _put(
        self, conn: Any, wd: WorkflowDef, existing: Json | None, now: int, user: str | None
    ) -> None:
        assert wd.name is not None
        if existing is None:
            stored = wd.model_copy(
                update={"createTime": now, "createdBy": user, "updateTime": None, "updatedBy": None}
            )
            await repo.insert_workflow_def(conn, wd.name, wd.version, stored.to_json(), now)
        else:
            stored = wd.model_copy(
                update={
                    "createTime": existing.get("createTime"),
                    "createdBy": existing.get("createdBy"),
                    "updateTime": now,
                    "updatedBy": user,
                }
            )
            await repo.replace_workflow_def(conn, wd.name, wd.version, stored.to_json(), now)

    async def get_workflow_def(self, name: str, version: int | None) -> Json:
        async with self.db.read() as conn:
            found = await repo.get_workflow_def(conn, name, version)
        if found is None:
            raise _workflow_not_found(name, version)
        return found

    async def list_workflow_defs(self) -> list[Json]:
        async with self.db.read() as conn:
            return await repo.list_workflow_defs(conn)

    async def list_latest_workflow_defs(self) -> list[Json]:
        async with self.db.read() as conn:
            return await repo.list_latest_workflow_defs(conn)

    async def workflow_names_and_versions(self) -> dict[str, list[Json]]:
        async with self.db.read() as conn:
            rows = await repo.list_workflow_versions(conn)
        out: dict[str, list[Json]] = defaultdict(list)
        for r in rows:
            summary: Json = {
                "name": r["name"],
                "version": r["version"],
                "createTime": r["created_at"],
            }
            if r["updated_at"] is not None:
                summary["updateTime"] = r["updated_at"]
            out[r["name"]].append(summary)
        return dict(out)

    async def workflow_versions(self, name: str) -> list[Json]:
        versions = (await self.workflow_names_and_versions()).get(name)
        if not versions:
            raise _workflow_not_found(name, None)
        return versions

    async def delete_workflow_def(self, name: str, version: int) -> None:
        async with self.db.write() as conn:
            if not await repo.delete_workflow_def(conn, name, version):
                raise NotFound(f"No such workflow definition: {name} version: {version}")
        self.on_workflow_def_change()
