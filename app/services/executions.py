"""Workflows and tasks as the API sees them: request checks, long polls, bulk loops.
The engine (app/engine) does the state changes."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from app.engine import decider
from app.engine.executor import Executor, StartRequest, queue_name
from app.engine.model import T_SCHEDULED, WF_RUNNING, TaskRecord
from app.engine.operations import Operations
from app.errors import BadRequest, BatonError, FieldError, NotFound, ValidationFailed
from app.schemas.execution import StartWorkflowRequest, TaskResult
from app.schemas.metadata import BulkResponse
from app.services.validation import workflow_def_errors
from app.store import executions as store

Json = dict[str, Any]

MAX_LONG_POLL_MS = 5000
MAX_BULK = 1000
# A long poll re-reads its queue at least this often even without a wake-up, so a lost
# notification (or a delayed task coming due) costs at most this much latency.
POLL_RECHECK_S = 1.0


def _start_request(body: StartWorkflowRequest, name: str | None = None) -> StartRequest:
    definition = body.workflowDef
    if definition is not None:
        errors = workflow_def_errors(definition)
        if errors:
            raise ValidationFailed(errors)
    resolved_name = name or body.name or (definition.name if definition else None)
    if not resolved_name:
        raise ValidationFailed([FieldError("name", "Workflow name cannot be null or empty")])
    if body.input is None and not body.externalInputPayloadStoragePath:
        raise BadRequest("NULL input passed when starting workflow")
    return StartRequest(
        name=resolved_name,
        version=body.version,
        input=dict(body.input or {}),
        correlationId=body.correlationId,
        priority=body.priority,
        taskToDomain=dict(body.taskToDomain),
        workflowDef=definition,
        idempotencyKey=body.idempotencyKey,
        idempotencyStrategy=body.idempotencyStrategy,
        createdBy=body.createdBy,
    )


def _due_at(task: TaskRecord) -> int:
    """When a SCHEDULED worker task is due: its callback counts from its last update, and a
    task never polled also waits out its start delay (as when it was first queued)."""
    base = task.updateTime
    if task.pollCount == 0:
        base = max(base, task.scheduledTime + task.startDelayInSeconds * 1000)
    return base + task.callbackAfterSeconds * 1000


class ExecutionService:
    def __init__(self, executor: Executor) -> None:
        self.ex = executor
        self.ops = Operations(executor)

    # -- workflows ------------------------------------------------------------------------

    async def start(self, body: StartWorkflowRequest, user: str | None = None) -> str:
        request = _start_request(body)
        # Who the workflow runs as decides which secrets it may read: never from the body.
        request.createdBy = user
        return await self._start(request)

    async def _start(self, request: StartRequest) -> str:
        """Start from a StartWorkflowRequest: Conductor words a missing definition differently
        here than on the start-by-name endpoint."""
        try:
            return await self.ex.start(request)
        except NotFound:
            if request.workflowDef is not None:
                raise
            shown = "null" if request.version is None else str(request.version)
            raise NotFound(
                f"No such workflow defined. name={request.name}, version={shown}"
            ) from None

    async def start_by_name(
        self,
        name: str,
        version: int | None,
        correlation_id: str | None,
        priority: int,
        workflow_input: Json,
        user: str | None = None,
    ) -> str:
        request = StartRequest(
            name=name,
            version=version,
            input=workflow_input,
            correlationId=correlation_id,
            priority=priority,
            createdBy=user,
        )
        return await self.ex.start(request)

    async def get_workflow(self, workflow_id: str, include_tasks: bool) -> Json:
        return self.ex.masker.workflow_view(await self.ex.get_workflow(workflow_id, include_tasks))

    async def status(self, workflow_id: str, include_output: bool, include_variables: bool) -> Json:
        wf = await self.get_workflow(workflow_id, include_tasks=False)
        out: Json = {"workflowId": wf["workflowId"], "status": wf["status"]}
        if wf.get("correlationId") is not None:
            out["correlationId"] = wf["correlationId"]
        if include_output:
            out["output"] = wf.get("output", {})
        if include_variables:
            out["variables"] = wf.get("variables", {})
        return out

    async def workflow_tasks(
        self, workflow_id: str, start: int, count: int, statuses: list[str]
    ) -> Json:
        wf = await self.get_workflow(workflow_id, include_tasks=True)
        wanted = {s.upper() for s in statuses}
        tasks = [t for t in wf["tasks"] if not wanted or t["status"] in wanted]
        return {"totalHits": len(tasks), "results": tasks[start : start + count]}

    async def running(self, name: str, version: int | None, start: int, end: int) -> list[str]:
        async with self.ex.db.read() as conn:
            return await store.running_ids(conn, name, version, start, end)

    async def correlated(
        self, name: str, correlation_id: str, include_closed: bool, include_tasks: bool
    ) -> list[Json]:
        async with self.ex.db.read() as conn:
            found = await store.correlated(conn, name, correlation_id, include_closed)
        if not include_closed:  # Conductor: only RUNNING ones (a PAUSED one is left out)
            found = [wf for wf in found if wf.status == WF_RUNNING]
        if not include_tasks:
            return [self.ex.masker.view({**wf.to_json(), "tasks": []}) for wf in found]
        return [await self.get_workflow(wf.workflowId, True) for wf in found]

    async def execute(
        self,
        body: StartWorkflowRequest,
        name: str,
        version: int,
        wait_until: list[str],
        wait_seconds: int,
        request_id: str | None,
        user: str | None = None,
    ) -> Json:
        """Start, then wait (bounded) until the workflow ends or reaches one of the refs."""
        request = _start_request(body, name)
        request.version = version or None
        request.createdBy = user
        workflow_id = await self._start(request)
        seconds = max(0, min(wait_seconds, 300))
        deadline = time.monotonic() + seconds
        async with self.ex.watching(workflow_id, seconds) as key:
            while True:
                seen = self.ex.notifier.generation(key)
                wf = await self.ex.get_workflow(workflow_id, include_tasks=bool(wait_until))
                reached = any(
                    t["referenceTaskName"] in wait_until and t["status"] != T_SCHEDULED
                    for t in wf.get("tasks", [])
                )
                remaining = deadline - time.monotonic()
                if wf["status"] != "RUNNING" or reached or remaining <= 0:
                    break
                await self.ex.notifier.wait(key, min(remaining, POLL_RECHECK_S), since=seen)
        wf = self.ex.masker.workflow_view(wf)
        return {
            "responseType": "TARGET_WORKFLOW",
            "targetWorkflowId": workflow_id,
            "targetWorkflowStatus": wf["status"],
            "workflowId": workflow_id,
            "requestId": request_id,
            "correlationId": wf.get("correlationId"),
            "input": wf.get("input", {}),
            "output": wf.get("output", {}),
            "status": wf["status"],
            "tasks": wf.get("tasks", []),
            "createTime": wf.get("createTime"),
            "updateTime": wf.get("updateTime"),
            "variables": wf.get("variables", {}),
        }

    async def bulk(self, ids: list[str], op: Callable[[str], Awaitable[Any]]) -> BulkResponse:
        if len(ids) > MAX_BULK:
            raise BadRequest(
                "Cannot process more than 1000 workflows. Please use multiple requests."
            )
        result = BulkResponse()
        for workflow_id in ids:
            try:
                await op(workflow_id)
                result.bulkSuccessfulResults.append(workflow_id)
            except BatonError as exc:
                result.bulkErrorResults[workflow_id] = exc.message
        return result

    # -- tasks ----------------------------------------------------------------------------

    async def poll(
        self,
        task_type: str,
        worker_id: str | None,
        domain: str | None,
        count: int,
        timeout_ms: int,
    ) -> list[Json]:
        if timeout_ms > MAX_LONG_POLL_MS:
            raise BadRequest("Long Poll Timeout value cannot be more than 5 seconds")
        if count < 1:
            raise BadRequest("count must be at least 1")
        name = f"{domain}:{task_type}" if domain else task_type
        deadline = time.monotonic() + max(timeout_ms, 0) / 1000
        while True:
            seen = self.ex.notifier.generation(name)
            claimed = await self.ex.poll(task_type, worker_id, domain, count)
            remaining = deadline - time.monotonic()
            if claimed or remaining <= 0:
                return [t.to_json() for t in claimed]
            await self.ex.notifier.wait(name, min(remaining, POLL_RECHECK_S), since=seen)

    async def update(self, body: TaskResult) -> str:
        await self._update(body)
        assert body.taskId is not None
        return body.taskId

    async def _update(self, body: TaskResult) -> None:
        errors: list[FieldError] = []
        if not body.workflowInstanceId:
            errors.append(FieldError("workflowInstanceId", "Workflow Id cannot be null or empty"))
        if not body.taskId:
            errors.append(FieldError("taskId", "Task ID cannot be null or empty"))
        if body.status is None and not body.extendLease:
            errors.append(FieldError("status", "Status cannot be null"))
        if errors:
            raise ValidationFailed(errors)
        assert body.taskId is not None
        result = body.model_dump(exclude_none=True)
        result.setdefault("status", "IN_PROGRESS")
        await self.ex.update_task(result)

    async def update_v2(self, body: TaskResult) -> Json | None:
        """Update, then hand the same worker its next task of the same type, if any. A
        non-terminal update (in progress, lease extension) gets nothing back: the worker
        still holds that task, and an in-progress one must not come straight back to it."""
        await self._update(body)
        assert body.taskId is not None
        if body.extendLease or body.status in (None, "IN_PROGRESS"):
            return None
        task = await self.ex.get_task(body.taskId)
        claimed = await self.ex.poll(task.taskType, body.workerId, task.domain, 1)
        return claimed[0].to_json() if claimed else None

    async def update_by_ref(
        self, workflow_id: str, ref: str, status: str, output: Json, worker_id: str | None
    ) -> str:
        wf = await self.ex.get_workflow(workflow_id, include_tasks=True)
        pending = [
            t
            for t in wf["tasks"]
            if t["status"] in ("SCHEDULED", "IN_PROGRESS")
            and (t["referenceTaskName"] == ref or t["referenceTaskName"].startswith(ref + "__"))
        ]
        if not pending:
            return ""
        task_id: str = pending[0]["taskId"]
        result: Json = {"taskId": task_id, "status": status, "outputData": output}
        if worker_id:
            result["workerId"] = worker_id
        await self.ex.update_task(result)
        return task_id

    async def get_task(self, task_id: str) -> Json:
        shown: Json = self.ex.masker.view((await self.ex.get_task(task_id)).to_json())
        return shown

    async def add_log(self, task_id: str, text: str) -> None:
        async with self.ex.db.write() as conn:
            if await store.task_workflow_id(conn, task_id) is None:
                raise NotFound(f"Task not found for taskId: {task_id}")
            await store.add_logs(conn, [(task_id, text, self.ex.clock.now_ms())])

    async def logs(self, task_id: str) -> list[Json]:
        async with self.ex.db.read() as conn:
            logs = await store.get_logs(conn, task_id)
        shown: list[Json] = self.ex.masker.view(logs)
        return shown

    async def queue_sizes(self, names: list[str] | None) -> dict[str, int]:
        async with self.ex.db.read() as conn:
            sizes = await store.queue_sizes(conn, names)
        if names is not None:
            return {n: sizes.get(n, 0) for n in names}
        return dict(sorted(sizes.items()))

    async def poll_data(self, task_type: str | None) -> list[Json]:
        async with self.ex.db.read() as conn:
            return await store.poll_data_for(conn, task_type)

    async def pending_of_type(self, task_type: str, start: int, count: int) -> list[Json]:
        async with self.ex.db.read() as conn:
            found = await store.pending_tasks_of_type(conn, task_type, start, count)
        return [self.ex.masker.view(t.to_json()) for t in found]

    async def requeue(self, task_type: str) -> int:
        """Put every SCHEDULED task of a type back on its queue (repairs a lost message)."""
        async with self.ex.db.write() as conn:
            pending: list[TaskRecord] = [
                t
                for t in await store.pending_tasks_of_type(conn, task_type, 0, 100_000)
                if t.status == T_SCHEDULED
                and t.workflowTask.get("type", "SIMPLE") in decider.WORKER_TYPES
            ]
            items = [(queue_name(t), t.taskId, _due_at(t), t.workflowPriority) for t in pending]
            await store.push(conn, self.ex.db.ops, items)
        self.ex.notifier.notify({i[0] for i in items})
        return len(items)
