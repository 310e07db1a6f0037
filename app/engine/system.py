"""System tasks inside the engine: what happens when one is scheduled (inside the decide
transaction), and how the outcome of one run outside it is applied.

Control flow (SWITCH, FORK/JOIN, DO_WHILE, ...) is the decider's; here are the tasks that
touch the workflow or other workflows (SET_VARIABLE, TERMINATE, SUB_WORKFLOW, ...), wait
(WAIT, HUMAN), or hand their work to the background runner (HTTP, INLINE).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from app.engine import decider, handoff
from app.engine.model import (
    T_CANCELED,
    T_COMPLETED,
    T_FAILED,
    T_FAILED_WITH_TERMINAL_ERROR,
    T_IN_PROGRESS,
    T_TIMED_OUT,
    WF_COMPLETED,
    WF_FAILED,
    WF_TERMINATED,
    WF_TIMED_OUT,
    TaskRecord,
)
from app.errors import BatonError
from app.schemas.metadata import WorkflowDef, WorkflowTask
from app.store import executions as store
from app.tasks.base import AsyncTask, SyncTask, TaskOutcome
from app.tasks.waiting import parse_duration, parse_until

if TYPE_CHECKING:
    from app.engine.executor import Executor, Unit

SYSTEM_QUEUE_PREFIX = "_sys:"
# Types the decider runs entirely (they are created done, or evaluated on every step).
CONTROL_TYPES = frozenset(
    {"SWITCH", "DECISION", "FORK_JOIN", "FORK_JOIN_DYNAMIC", "JOIN", "EXCLUSIVE_JOIN", "DO_WHILE"}
)
# Conductor's limit on a workflow's variables (conductor.app.max-workflow-variables-payload...).
MAX_VARIABLES_BYTES = 256 * 1024
SUB_WORKFLOW_STATUS = {
    WF_COMPLETED: T_COMPLETED,
    WF_FAILED: T_FAILED,
    WF_TERMINATED: T_CANCELED,
    WF_TIMED_OUT: T_TIMED_OUT,
}

Inline = Callable[[AsyncConnection, "Unit", TaskRecord, int], Awaitable[None]]
QueueHandler = Callable[[str], Awaitable[None]]


def system_queue(task_type: str) -> str:
    return SYSTEM_QUEUE_PREFIX + task_type


def apply_outcome(task: TaskRecord, outcome: TaskOutcome, now: int) -> None:
    task.outputData = dict(outcome.output)
    task.updateTime = now
    if outcome.reason:
        task.reasonForIncompletion = outcome.reason[:500]
    if outcome.status == T_IN_PROGRESS:
        task.status = T_IN_PROGRESS
        task.callbackAfterSeconds = outcome.callback_after_seconds
    else:
        task.status = outcome.status
        task.endTime = now
    decider.refresh_timeout(task)


class SystemTasks:
    def __init__(self, executor: Executor) -> None:
        self.ex = executor
        self.sync: dict[str, SyncTask] = {}
        self.asynchronous: dict[str, AsyncTask] = {}
        self.queue_handlers: dict[str, QueueHandler] = {}
        self._inline: dict[str, Inline] = {
            "NOOP": self._noop,
            "HUMAN": self._human,
            "TERMINATE": self._terminate,
            "SET_VARIABLE": self._set_variable,
            "WAIT": self._wait,
            "START_WORKFLOW": self._start_workflow,
            "SUB_WORKFLOW": self._sub_workflow,
        }

    def register_inline(self, task_type: str, handler: Inline) -> None:
        self._inline[task_type] = handler

    def register_queue(self, kind: str, handler: QueueHandler) -> None:
        """Serve the system queue `_sys:<kind>` with `handler(item_id)`: work that is not a
        task (event handler actions applied after the EVENT task's transaction)."""
        self.queue_handlers[kind] = handler

    @property
    def runner_queues(self) -> list[str]:
        """The system queues the background runner serves."""
        kinds = [*self.asynchronous, *self.sync, "WAIT", "SUB_WORKFLOW", *self.queue_handlers]
        return [system_queue(t) for t in kinds]

    async def start(self, conn: AsyncConnection, unit: Unit, task: TaskRecord, now: int) -> bool:
        """Begin a just-scheduled system task. True if it changed the workflow at once (the
        decider should look again)."""
        kind = task.workflowTask.get("type", "SIMPLE")
        if task.terminal or kind in CONTROL_TYPES:
            return True
        handler = self._inline.get(kind)
        if handler is not None:
            await handler(conn, unit, task, now)
            decider.refresh_timeout(task)
            return True
        sync = self.sync.get(kind)
        # Secrets are read outside the transaction: a sync task that needs one runs async.
        if sync is not None and not handoff.secret_template(task):
            apply_outcome(task, sync.execute(task.inputData), now)
            self.ex.filter_output(unit, task, now)
            return True
        if kind in self.asynchronous or sync is not None:
            self._enqueue(unit, task, now + task.callbackAfterSeconds * 1000)
            return False
        # A type that validation accepts but this build cannot run: fail loudly, not hang.
        task.status = T_FAILED_WITH_TERMINAL_ERROR
        task.reasonForIncompletion = f"Task type {kind} is not supported by this server"
        task.endTime = now
        task.timeoutAt = None
        return True

    def _enqueue(self, unit: Unit, task: TaskRecord, due: int) -> None:
        name = system_queue(task.workflowTask.get("type", task.taskType))
        unit.queue_push.append((name, task.taskId, due, unit.wf.priority))
        unit.notify.add(name)

    # -- inline handlers --------------------------------------------------------------------

    async def _noop(self, _c: AsyncConnection, _u: Unit, task: TaskRecord, now: int) -> None:
        apply_outcome(task, TaskOutcome.completed(), now)

    async def _human(self, _c: AsyncConnection, _u: Unit, task: TaskRecord, _now: int) -> None:
        return None  # IN_PROGRESS until someone updates it

    async def _terminate(self, _c: AsyncConnection, _u: Unit, task: TaskRecord, now: int) -> None:
        status = str(task.inputData.get("terminationStatus") or "").upper()
        if status not in (WF_COMPLETED, WF_FAILED, WF_TERMINATED):
            apply_outcome(
                task,
                TaskOutcome.failed(
                    f"terminationStatus must be COMPLETED, FAILED or TERMINATED, not {status!r}",
                    terminal=True,
                ),
                now,
            )
            return
        task.inputData["terminationStatus"] = status
        output = task.inputData.get("workflowOutput")
        result = output if isinstance(output, dict) else ({"output": output} if output else {})
        apply_outcome(task, TaskOutcome.completed(dict(result)), now)

    async def _set_variable(
        self, _c: AsyncConnection, unit: Unit, task: TaskRecord, now: int
    ) -> None:
        merged = {**unit.wf.variables, **task.inputData}
        size = len(json.dumps(merged, separators=(",", ":")).encode())
        if size > MAX_VARIABLES_BYTES:
            reason = (
                f"The variables payload size: {size} of workflow: {unit.wf.workflowId} is "
                f"greater than the permissible limit: {MAX_VARIABLES_BYTES // 1024} kilobytes"
            )
            apply_outcome(task, TaskOutcome.failed(reason, terminal=True), now)
            return
        unit.wf.variables = merged
        apply_outcome(task, TaskOutcome.completed(), now)

    async def _wait(self, _c: AsyncConnection, unit: Unit, task: TaskRecord, now: int) -> None:
        duration = task.inputData.get("duration")
        until = task.inputData.get("until")
        given = [v for v in (duration, until) if v not in (None, "")]
        if len(given) == 2:
            reason = "Both 'duration' and 'until' specified. Please provide only one input"
            apply_outcome(task, TaskOutcome.failed(reason, terminal=True), now)
            return
        if not given:
            return  # open-ended: completed by a task update or a signal
        if duration not in (None, ""):
            seconds = parse_duration(duration)
            due = None if seconds is None else now + seconds * 1000
            bad = f"Unable to parse duration: {duration}"
        else:
            due = parse_until(until)
            bad = f"Unable to parse date: {until}"
        if due is None:
            apply_outcome(task, TaskOutcome.failed(bad, terminal=True), now)
            return
        task.outputData = {}
        self._enqueue(unit, task, due)

    async def _start_workflow(
        self, conn: AsyncConnection, unit: Unit, task: TaskRecord, now: int
    ) -> None:
        from app.engine.executor import StartRequest

        request = task.inputData.get("startWorkflow")
        if not isinstance(request, dict) or not request.get("name"):
            apply_outcome(task, TaskOutcome.failed("Missing 'startWorkflow' in input data."), now)
            return
        try:
            inline_def = request.get("workflowDef")
            start = StartRequest(
                name=str(request["name"]),
                version=request.get("version"),
                input=dict(request.get("input") or {}),
                correlationId=request.get("correlationId") or unit.wf.correlationId,
                taskToDomain=dict(request.get("taskToDomain") or unit.wf.taskToDomain),
                workflowDef=WorkflowDef.model_validate(inline_def) if inline_def else None,
                createdBy=unit.wf.createdBy,
            )
            child_id, notify = await self.ex._start_in(conn, start, now)
        except (BatonError, ValueError, TypeError) as exc:
            message = getattr(exc, "message", str(exc))
            apply_outcome(
                task, TaskOutcome.failed(f"startWorkflow validation failed. {message}"), now
            )
            return
        unit.notify |= notify
        apply_outcome(task, TaskOutcome.completed({"workflowId": child_id}), now)

    async def _sub_workflow(
        self, conn: AsyncConnection, unit: Unit, task: TaskRecord, now: int
    ) -> None:
        from app.engine import expressions
        from app.engine.executor import StartRequest

        wt = WorkflowTask.model_validate(task.workflowTask)
        params = wt.subWorkflowParam
        assert params is not None
        # Conductor resolves name, version, taskToDomain and priority against the workflow
        # when the task is scheduled; an inline definition only when it is one expression.
        state = decider.State(
            unit.definition, unit.index, unit.wf, unit.tasks, now, lambda _n: None
        )
        raw = {
            "name": params.name,
            "version": params.version,
            "taskToDomain": params.taskToDomain,
            "priority": params.priority,
            "workflowDefinition": params.workflowDefinition
            if isinstance(params.workflowDefinition, str)
            else None,
        }
        resolved = expressions.resolve(raw, decider.evaluation_context(state), task_id=task.taskId)
        assert isinstance(resolved, dict)
        inline_def: Any = resolved["workflowDefinition"] or params.workflowDefinition
        name = resolved["name"] or (inline_def.get("name") if isinstance(inline_def, dict) else "")
        version = resolved["version"] if isinstance(resolved["version"], int) else None
        to_domain = resolved["taskToDomain"] if isinstance(resolved["taskToDomain"], dict) else {}
        priority = resolved["priority"]
        # Deterministic, as Conductor: a retried start finds the child it already made.
        child_id = str(
            uuid.uuid5(
                uuid.NAMESPACE_URL,
                f"subworkflow:{unit.wf.workflowId}:{task.taskId}:{task.retryCount}",
            )
        )
        recorded = task.inputData.get("workflowInput")
        if "subWorkflowName" in task.inputData and isinstance(recorded, dict):
            child_input = dict(recorded)  # this task started a child before (a rerun)
        else:
            child_input = dict(task.inputData)
        try:
            request = StartRequest(
                name=str(name or ""),
                version=version,
                input=child_input,
                correlationId=unit.wf.correlationId,
                taskToDomain=dict(to_domain or unit.wf.taskToDomain),
                workflowDef=WorkflowDef.model_validate(inline_def) if inline_def else None,
                priority=priority if isinstance(priority, int) else unit.wf.priority,
                createdBy=unit.wf.createdBy,
                parentWorkflowId=unit.wf.workflowId,
                parentWorkflowTaskId=task.taskId,
                workflowId=child_id,
            )
            _, notify = await self.ex._start_in(conn, request, now)
            child = await store.load_workflow(conn, self.ex.db.ops, child_id, lock=False)
        except (BatonError, ValueError) as exc:
            # Conductor names the sub-workflow (not the task) in this message.
            reason = (
                f"The Task {name or wt.taskReferenceName} defined as a sub-workflow has no "
                f"workflow definition available ({getattr(exc, 'message', exc)})"
            )
            apply_outcome(task, TaskOutcome.failed(reason, terminal=True), now)
            return
        unit.notify |= notify
        # Conductor's task input records what was started.
        task.inputData.update(
            subWorkflowName=request.name,
            subWorkflowVersion=child[0].workflowVersion if child else version,
            subWorkflowTaskToDomain=to_domain or None,
            subWorkflowDefinition=inline_def or None,
            priority=request.priority,
            workflowInput=child_input,
        )
        task.subWorkflowId = child_id
        task.outputData = {"subWorkflowId": child_id}

    # -- sub-workflow bookkeeping ------------------------------------------------------------

    def child_ended(self, unit: Unit, now: int) -> None:
        """A workflow started by a SUB_WORKFLOW task ended: have the parent look at it."""
        wf = unit.wf
        if wf.parentWorkflowId and wf.parentWorkflowTaskId:
            name = system_queue("SUB_WORKFLOW")
            unit.queue_push.append((name, wf.parentWorkflowTaskId, now, wf.priority))
            unit.notify.add(name)

    async def sync_from_child(
        self, conn: AsyncConnection, unit: Unit, task: TaskRecord, now: int
    ) -> None:
        if task.terminal or not task.subWorkflowId:
            return
        found = await store.load_workflow(conn, self.ex.db.ops, task.subWorkflowId, lock=False)
        if found is None:
            apply_outcome(task, TaskOutcome.failed("The sub workflow no longer exists"), now)
            return
        child, _ = found
        status = SUB_WORKFLOW_STATUS.get(child.status)
        if status is None:
            return  # still running or paused
        output = {"subWorkflowId": child.workflowId, **child.output}
        reason = None
        if status != T_COMPLETED:
            reason = (
                f"Sub workflow {child.workflowId} failure reason: {child.reasonForIncompletion}"
            )
        apply_outcome(task, TaskOutcome(status, output, reason), now)
        self.ex.filter_output(unit, task, now)

    async def terminate_children(
        self, conn: AsyncConnection, unit: Unit, reason: str, now: int
    ) -> None:
        """Cancelled SUB_WORKFLOW tasks take their running children down with them."""
        for task in unit.tasks:
            if task.status != T_CANCELED or not task.subWorkflowId:
                continue
            await self.ex.terminate_in(conn, task.subWorkflowId, reason, now)

    @staticmethod
    def resumable(task: TaskRecord | None, child_id: str) -> bool:
        """Whether retrying the workflow `child_id` puts this parent task back to waiting
        for it: the task ended unsuccessfully on that child and no later attempt replaced
        it. (An optional task that failed became COMPLETED_WITH_ERRORS: its parent went on,
        as Conductor's updateAndPushParents stops at optional tasks.)"""
        return (
            task is not None
            and task.subWorkflowId == child_id
            and not task.retried
            and task.status in decider.FAILED_STATES
        )

    def resume_sub_workflow(self, unit: Unit, task: TaskRecord, now: int) -> None:
        """The child of this SUB_WORKFLOW task is being retried: the task waits for that
        same child again (Conductor's updateAndPushParents) instead of starting a new one."""
        task.status = T_IN_PROGRESS
        task.executed = False
        task.reasonForIncompletion = None
        task.outputData = {"subWorkflowId": task.subWorkflowId}
        # A task timeout counts from the resumption, as the workflow's from lastRetriedTime.
        task.startTime = now
        task.endTime = 0
        task.updateTime = now
        decider.refresh_timeout(task)
        unit.touch(task)
        unit.logs.append((task.taskId, f"Sub workflow {task.subWorkflowId} retried.", now))
