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
    T_CANCELED,
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
from app.engine.notify import workflow_key
from app.engine.system import SystemTasks
from app.errors import BadRequest, Conflict, NotFound
from app.schemas.metadata import WorkflowDef, WorkflowTask
from app.store import executions as store
from app.store import metadata as meta_repo

# Deeper sub-workflow nesting than this is a definition that starts itself: stop there.
MAX_NESTING = 64
# A retry reopens these rather than scheduling new ones (Conductor's rule).
RETRIED_IN_PLACE = frozenset({"JOIN", "EXCLUSIVE_JOIN", "DO_WHILE"})


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


def _reopen_in_place(unit: Unit, task: TaskRecord, now: int) -> None:
    """Conductor's retry of a JOIN or a DO_WHILE: the same task waits again, keeping what a
    new one would lack (a dynamic fork's joinOn, the loop's iteration and outputs)."""
    task.status = T_IN_PROGRESS
    task.executed = False
    task.reasonForIncompletion = None
    task.endTime = 0
    task.updateTime = now
    decider.refresh_timeout(task)
    unit.touch(task)


def _first_unsuccessful(unit: Unit) -> TaskRecord | None:
    """Where a retry with resumeSubworkflowTasks looks: the first current attempt that
    ended unsuccessfully. Conductor takes the first unsuccessful task of all, even one a
    later attempt replaced; here a real failure also comes before the tasks cancelled
    because of it, so a failed sub-workflow in a fork is found behind a cancelled sibling."""
    current = sorted((t for t in unit.tasks if not t.retried), key=lambda t: t.seq)
    failed = [t for t in current if t.status in decider.FAILED_STATES]
    return next((t for t in failed if t.status != T_CANCELED), failed[0] if failed else None)


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

    async def retry(self, workflow_id: str, resume_subworkflow_tasks: bool = False) -> None:
        """Conductor's retry. The failed tasks run again as new tasks (a failed SUB_WORKFLOW
        task so starts a new child); with `resume_subworkflow_tasks` the deepest failed
        sub-workflow is retried in place instead. Either way the parents of the workflow
        retried are revived: their SUB_WORKFLOW task waits for the same child again."""
        # Outermost ancestor first: rows are locked parent before child, as terminate does.
        chain: list[str] = []

        async def outermost(conn: AsyncConnection) -> str:
            chain[:] = await self._resumable_ancestors(conn, workflow_id)
            return chain[0]

        async def apply(conn: AsyncConnection, root: Unit, now: int) -> None:
            units = [root, *[await self.ex._load(conn, wf_id) for wf_id in chain[1:]]]
            wf = units[-1].wf
            if not wf.terminal:
                raise NotFound(f"Workflow is still running.  status={wf.status}")
            if not units[-1].tasks:
                raise Conflict("Workflow has not started yet")
            if resume_subworkflow_tasks:
                units.extend(await self._failed_descendants(conn, units[-1]))
            await self._retry_unit(conn, units[-1], now)
            for parent, child in zip(reversed(units[:-1]), reversed(units[1:]), strict=True):
                task = parent.task(child.wf.parentWorkflowTaskId or "")
                if parent.wf.status == WF_COMPLETED or not SystemTasks.resumable(
                    task, child.wf.workflowId
                ):
                    break  # the link changed since it was read: stop reviving here
                assert task is not None
                if parent.wf.terminal:
                    await self._retry_unit(conn, parent, now, resumed=task)
                    parent.wf.failedReferenceTaskNames = []
                    parent.wf.failedTaskNames = []
                else:  # a PAUSED parent: its task waits again, the pause stands
                    self.ex.system.resume_sub_workflow(parent, task, now)
            for unit in units[1:]:  # the outermost one is decided and saved by change()
                await self.ex._decide(conn, unit, now)
                unit.wf.updateTime = now
                unit.notify.add(workflow_key(unit.wf.workflowId))
                await self.ex._save(conn, unit)
                root.notify |= unit.notify

        await self.ex.change(outermost, apply)

    async def _retry_unit(
        self, conn: AsyncConnection, unit: Unit, now: int, resumed: TaskRecord | None = None
    ) -> None:
        """Schedule the latest failed attempt of every task again and reopen the workflow;
        `resumed`, a SUB_WORKFLOW task whose child is retried, waits for that child instead."""
        wf = unit.wf
        latest: dict[str, TaskRecord] = {}
        for task in unit.tasks:
            if not task.retried:
                latest[task.referenceTaskName] = task
        failed = [
            t for t in latest.values() if t.status in decider.FAILED_STATES and t is not resumed
        ]
        if not failed and resumed is None:
            raise Conflict(
                "There are no retryable tasks! Use restart if you want to attempt entire "
                "workflow execution again."
            )
        defs = await self.ex.task_defs.get_many(conn, [t.taskDefName for t in failed])
        state = decider.State(unit.definition, unit.index, wf, unit.tasks, now, defs.get)
        for old in failed:
            if old.taskType in RETRIED_IN_PLACE:
                _reopen_in_place(unit, old, now)
                continue
            wt = WorkflowTask.model_validate(old.workflowTask)
            fresh = decider.new_task(state, wt, retry_of=old)
            old.retried = True
            unit.touch(old)
            fresh.seq = len(unit.tasks) + 1
            unit.tasks.append(fresh)
            unit.new.append(fresh)
            await _restart_task(self.ex, conn, unit, fresh, now)
        if resumed is not None:
            self.ex.system.resume_sub_workflow(unit, resumed, now)
        _reopen(unit, now)

    async def _resumable_ancestors(self, conn: AsyncConnection, workflow_id: str) -> list[str]:
        """`workflow_id` and, outermost first, the parents a retry of it revives (read
        without locks; `retry` checks each link again once the rows are locked)."""
        chain = [workflow_id]
        for _ in range(MAX_NESTING):
            found = await store.load_workflow(conn, self.ex.db.ops, chain[0], lock=False)
            if found is None or not found[0].parentWorkflowId:
                break
            child = found[0]
            task = await store.get_task(conn, child.parentWorkflowTaskId or "")
            parent = await store.load_workflow(
                conn, self.ex.db.ops, child.parentWorkflowId or "", lock=False
            )
            if (
                parent is None
                or parent[0].status == WF_COMPLETED
                or parent[0].workflowId in chain
                or task is None
                or task.workflowInstanceId != parent[0].workflowId
                or not SystemTasks.resumable(task, child.workflowId)
            ):
                break
            chain.insert(0, parent[0].workflowId)
        return chain

    async def _failed_descendants(self, conn: AsyncConnection, unit: Unit) -> list[Unit]:
        """Conductor's findLastFailedSubWorkflowIfAny: follow the first unsuccessful task
        down while it is a SUB_WORKFLOW task whose child ended with an unsuccessful task;
        the last workflow reached is the one to retry. Locked top-down."""
        found: list[Unit] = []
        seen = {unit.wf.workflowId}
        for _ in range(MAX_NESTING):
            task = _first_unsuccessful(unit)
            if task is None or task.taskType != "SUB_WORKFLOW" or not task.subWorkflowId:
                break
            if task.subWorkflowId in seen:
                break
            try:
                child = await self.ex._load(conn, task.subWorkflowId)
            except NotFound:
                break  # the child was removed: retry this workflow itself
            if not child.wf.terminal or _first_unsuccessful(child) is None:
                break
            found.append(child)
            seen.add(child.wf.workflowId)
            unit = child
        return found

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

    async def rerun(self, workflow_id: str, request: Json, user: str | None = None) -> str:
        """`user`, when given, is who asks: the rerun runs as them, since it may bring new
        input (running it as the first starter would lend that starter's secret access)."""
        from_task = request.get("reRunFromTaskId")

        async def apply(conn: AsyncConnection, unit: Unit, now: int) -> None:
            wf = unit.wf
            if not wf.terminal:
                raise Conflict(f"Workflow {workflow_id} is not in a terminal state, cannot rerun")
            if user is not None:
                wf.createdBy = user
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
