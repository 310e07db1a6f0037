"""Workflow operations (terminate, pause, resume, retry, restart, rerun, skip, reset
callbacks, remove), each one `Executor.change` with Conductor's rules and messages."""

from __future__ import annotations

import contextlib
import copy
import json

from sqlalchemy.ext.asyncio import AsyncConnection

from app.engine import decider
from app.engine.definition import index_for
from app.engine.executor import Executor, Unit, queue_name, terminate_unit
from app.engine.model import (
    T_IN_PROGRESS,
    T_SCHEDULED,
    T_SKIPPED,
    WF_COMPLETED,
    WF_PAUSED,
    WF_RUNNING,
    WF_TERMINATED,
    Json,
    TaskRecord,
    new_id,
)
from app.errors import BadRequest, Conflict, NotFound
from app.schemas.metadata import WorkflowDef, WorkflowTask
from app.store import executions as store
from app.store import metadata as meta_repo


def _reopen(unit: Unit, now: int) -> None:
    wf = unit.wf
    wf.status = WF_RUNNING
    wf.reasonForIncompletion = None
    wf.endTime = 0
    wf.lastRetriedTime = now
    wf.timeoutAt = decider.workflow_deadline(wf, unit.definition)


def _enqueue(unit: Unit, task: TaskRecord, now: int) -> None:
    if task.workflowTask.get("type", "SIMPLE") in decider.WORKER_TYPES:
        name = queue_name(task)
        due = now + task.callbackAfterSeconds * 1000
        unit.queue_push.append((name, task.taskId, due, unit.wf.priority))
        unit.notify.add(name)


async def _restart_task(
    executor: Executor, conn: AsyncConnection, unit: Unit, task: TaskRecord, now: int
) -> None:
    """Give a task that runs again its work: a queue entry for a worker, or the system
    task's own start (an HTTP call queued for the runner, a WAIT timer, a new child...)."""
    if task.workflowTask.get("type", "SIMPLE") in decider.WORKER_TYPES:
        _enqueue(unit, task, now)
        return
    task.status = T_IN_PROGRESS
    task.startTime = now
    await executor.system.start(conn, unit, task, now)


class Operations:
    def __init__(self, executor: Executor) -> None:
        self.ex = executor

    async def terminate(self, workflow_id: str, reason: str | None) -> None:
        async def apply(conn: AsyncConnection, unit: Unit, now: int) -> None:
            wf = unit.wf
            if wf.status == WF_COMPLETED:
                raise Conflict(f"Cannot terminate a {wf.status} workflow.")
            if wf.status == WF_TERMINATED:
                return
            terminate_unit(unit, reason, now)
            await self.ex.system.terminate_children(conn, unit, reason or "terminated", now)
            self.ex.system.child_ended(unit, now)

        await self.ex.change(workflow_id, apply, decide=False)

    async def pause(self, workflow_id: str) -> None:
        async def apply(_conn: AsyncConnection, unit: Unit, _now: int) -> None:
            if unit.wf.terminal:
                raise Conflict(f"Workflow {workflow_id} has ended, status cannot be updated.")
            unit.wf.status = WF_PAUSED

        await self.ex.change(workflow_id, apply, decide=False)

    async def resume(self, workflow_id: str) -> None:
        async def apply(_conn: AsyncConnection, unit: Unit, now: int) -> None:
            if unit.wf.status != WF_PAUSED:
                raise Conflict(
                    f"The workflow {workflow_id} is not PAUSED so cannot resume. "
                    f"Current status is {unit.wf.status}"
                )
            unit.wf.status = WF_RUNNING
            unit.wf.lastRetriedTime = now
            # The workflow timeout counts from lastRetriedTime: move its timer too.
            unit.wf.timeoutAt = decider.workflow_deadline(unit.wf, unit.definition)

        await self.ex.change(workflow_id, apply)

    async def retry(self, workflow_id: str) -> None:
        async def apply(_conn: AsyncConnection, unit: Unit, now: int) -> None:
            wf = unit.wf
            if not wf.terminal:
                raise NotFound(f"Workflow is still running.  status={wf.status}")
            if not unit.tasks:
                raise Conflict("Workflow has not started yet")
            latest: dict[str, TaskRecord] = {}
            for task in unit.tasks:
                if not task.retried:
                    latest[task.referenceTaskName] = task
            failed = [t for t in latest.values() if t.status in decider.FAILED_STATES]
            if not failed:
                raise Conflict(
                    "There are no retryable tasks! Use restart if you want to attempt entire "
                    "workflow execution again."
                )
            defs = await self.ex.task_defs.get_many(_conn, [t.taskDefName for t in failed])
            state = decider.State(unit.definition, unit.index, wf, unit.tasks, now, defs.get)
            for old in failed:
                wt = WorkflowTask.model_validate(old.workflowTask)
                fresh = decider.new_task(state, wt, retry_of=old)
                old.retried = True
                unit.touch(old)
                fresh.seq = len(unit.tasks) + 1
                unit.tasks.append(fresh)
                unit.new.append(fresh)
                await _restart_task(self.ex, _conn, unit, fresh, now)
            _reopen(unit, now)

        await self.ex.change(workflow_id, apply)

    async def restart(self, workflow_id: str, use_latest: bool) -> None:
        async def apply(conn: AsyncConnection, unit: Unit, now: int) -> None:
            wf = unit.wf
            if not wf.terminal:
                raise Conflict(f"Workflow {workflow_id} is not in a terminal state, cannot restart")
            if wf.status == WF_COMPLETED and not unit.definition.restartable:
                raise NotFound(f"Workflow: {workflow_id} is non-restartable")
            if use_latest:
                body = await meta_repo.get_workflow_def(conn, wf.workflowName, None)
                if body is not None:
                    definition = WorkflowDef.model_validate(body)
                    text = json.dumps(definition.to_json(), separators=(",", ":"))
                    await store.set_workflow_definition(conn, workflow_id, text)
                    unit.definition_json = text
                    unit.index = index_for(text)
                    wf.workflowVersion = definition.version
            await store.delete_tasks(conn, [t.taskId for t in unit.tasks])
            unit.tasks.clear()
            unit.dirty.clear()
            wf.createTime = now
            wf.output = {}
            wf.variables = copy.deepcopy(unit.definition.variables)
            wf.failedReferenceTaskNames = []
            wf.failedTaskNames = []
            _reopen(unit, now)

        await self.ex.change(workflow_id, apply)

    async def rerun(self, workflow_id: str, request: Json) -> str:
        from_task = request.get("reRunFromTaskId")

        async def apply(conn: AsyncConnection, unit: Unit, now: int) -> None:
            wf = unit.wf
            if not wf.terminal:
                raise Conflict(f"Workflow {workflow_id} is not in a terminal state, cannot rerun")
            if request.get("workflowInput") is not None:
                wf.input = dict(request["workflowInput"])
            if request.get("correlationId") is not None:
                wf.correlationId = request["correlationId"]
            # Conductor: a rerun starts without the earlier run's failure.
            wf.failedReferenceTaskNames = []
            wf.failedTaskNames = []
            if not from_task:
                await store.delete_tasks(conn, [t.taskId for t in unit.tasks])
                unit.tasks.clear()
                wf.output = {}
                _reopen(unit, now)
                return
            target = unit.task(from_task)
            if target is None:
                raise BadRequest(f"Task {from_task} not found")
            later = [t for t in unit.tasks if t.seq > target.seq]
            await store.delete_tasks(conn, [t.taskId for t in later])
            unit.tasks[:] = [t for t in unit.tasks if t.seq <= target.seq]
            for t in later:
                unit.dirty.pop(t.taskId, None)
            target.status = T_SCHEDULED
            target.executed = False
            target.retried = False
            target.outputData = {}
            target.reasonForIncompletion = None
            target.startTime = 0
            target.endTime = 0
            target.pollCount = 0
            target.scheduledTime = now
            target.updateTime = now
            target.callbackAfterSeconds = 0
            if request.get("taskInput") is not None:
                target.inputData = dict(request["taskInput"])
            unit.touch(target)
            await _restart_task(self.ex, conn, unit, target, now)
            decider.refresh_timeout(target)
            _reopen(unit, now)

        await self.ex.change(workflow_id, apply)
        return workflow_id

    async def skip_task(self, workflow_id: str, ref: str, request: Json) -> None:
        async def apply(_conn: AsyncConnection, unit: Unit, now: int) -> None:
            wf = unit.wf
            if wf.status != WF_RUNNING:
                raise Conflict(
                    f"The workflow {workflow_id} is not running so the task referenced by "
                    f"{ref} cannot be skipped"
                )
            wt = unit.index.task(ref)
            if wt is None:
                raise Conflict(
                    f"The task referenced by {ref} does not exist in workflow {workflow_id}"
                )
            if any(t.referenceTaskName == ref for t in unit.tasks):
                raise Conflict(
                    f"The task referenced by {ref} has already been processed, cannot be skipped"
                )
            skipped = TaskRecord(
                taskId=new_id(),
                workflowInstanceId=workflow_id,
                referenceTaskName=ref,
                taskType=(wt.name or "") if wt.type in decider.WORKER_TYPES else wt.type,
                taskDefName=wt.name or "",
                status=T_SKIPPED,
                seq=0,
                inputData=dict(request.get("taskInput") or {}),
                outputData=dict(request.get("taskOutput") or {}),
                workflowTask=wt.to_json(),
                scheduledTime=now,
                startTime=now,
                endTime=now,
                updateTime=now,
                correlationId=wf.correlationId,
                workflowType=wf.workflowName,
            )
            unit.tasks.insert(0, skipped)
            unit.new.append(skipped)

        await self.ex.change(workflow_id, apply)

    async def reset_callbacks(self, workflow_id: str) -> None:
        async def apply(_conn: AsyncConnection, unit: Unit, now: int) -> None:
            if unit.wf.terminal:
                raise Conflict(f"Workflow {workflow_id} has ended, cannot reset callbacks")
            for task in unit.tasks:
                if task.status == T_SCHEDULED and task.callbackAfterSeconds > 0:
                    task.callbackAfterSeconds = 0
                    task.updateTime = now
                    decider.refresh_timeout(task)
                    unit.touch(task)
                    _enqueue(unit, task, now)

        await self.ex.change(workflow_id, apply, decide=False)

    async def remove(self, workflow_id: str) -> None:
        async with self.ex.db.write() as conn:
            found = await store.load_workflow(conn, self.ex.db.ops, workflow_id, lock=True)
            if found is None:
                raise NotFound(f"No such workflow found by id: {workflow_id}")
            await store.delete_workflow(conn, workflow_id)

    async def terminate_remove(self, workflow_id: str, reason: str | None) -> None:
        with contextlib.suppress(Conflict):  # a completed workflow is removed as it is
            await self.terminate(workflow_id, reason)
        await self.remove(workflow_id)
