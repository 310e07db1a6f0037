"""The decider: a pure function from a workflow's definition and state to what happens next.

No I/O and no clock of its own: the executor hands in `now` and freshly loaded records, and
applies the returned decision in one transaction. The decider may change the records it was
given (they are the executor's private copies) and lists every one it changed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.engine import expressions
from app.engine.definition import DefIndex
from app.engine.model import (
    T_CANCELED,
    T_COMPLETED,
    T_COMPLETED_WITH_ERRORS,
    T_FAILED,
    T_FAILED_WITH_TERMINAL_ERROR,
    T_IN_PROGRESS,
    T_RETRIABLE,
    T_SCHEDULED,
    T_SKIPPED,
    T_TIMED_OUT,
    WF_COMPLETED,
    WF_FAILED,
    WF_RUNNING,
    WF_TERMINATED,
    WF_TIMED_OUT,
    Json,
    TaskRecord,
    WorkflowRecord,
    new_id,
)
from app.schemas.metadata import TaskDef, WorkflowDef, WorkflowTask

# Control-flow tasks are never retried through a TaskDef (Conductor's rule).
NEVER_RETRIED = frozenset(
    {
        "FORK_JOIN",
        "FORK",
        "FORK_JOIN_DYNAMIC",
        "JOIN",
        "SWITCH",
        "DECISION",
        "DO_WHILE",
        "EXCLUSIVE_JOIN",
        "TERMINATE",
        "SET_VARIABLE",
    }
)
# Types that a worker polls for; every other type is run by Baton itself.
WORKER_TYPES = frozenset({"SIMPLE", "DYNAMIC"})

TaskDefLookup = Callable[[str], TaskDef | None]


@dataclass
class Decision:
    schedule: list[TaskRecord] = field(default_factory=list)
    changed: dict[str, TaskRecord] = field(default_factory=dict)
    # Set when the workflow ends in this step.
    status: str | None = None
    reason: str | None = None
    output: Json | None = None
    failed_task: TaskRecord | None = None
    workflow_changed: bool = False

    def touch(self, task: TaskRecord) -> None:
        self.changed[task.taskId] = task

    @property
    def empty(self) -> bool:
        return not (self.schedule or self.changed or self.status or self.workflow_changed)


@dataclass
class State:
    definition: WorkflowDef
    index: DefIndex
    workflow: WorkflowRecord
    tasks: list[TaskRecord]
    now: int
    task_def: TaskDefLookup
    new_task_id: Callable[[], str] = new_id


# -- the evaluation context for ${...} --------------------------------------------------


def task_context(task: TaskRecord) -> Json:
    return {
        "input": task.inputData,
        "output": task.outputData,
        "taskType": task.taskType,
        "status": task.status,
        "referenceTaskName": task.referenceTaskName,
        "retryCount": task.retryCount,
        "correlationId": task.correlationId,
        "pollCount": task.pollCount,
        "taskDefName": task.taskDefName,
        "scheduledTime": task.scheduledTime,
        "startTime": task.startTime,
        "endTime": task.endTime,
        "workflowInstanceId": task.workflowInstanceId,
        "taskId": task.taskId,
        "reasonForIncompletion": task.reasonForIncompletion,
        "callbackAfterSeconds": task.callbackAfterSeconds,
        "workerId": task.workerId,
        "iteration": task.iteration,
    }


def workflow_context(wf: WorkflowRecord, definition: WorkflowDef) -> Json:
    return {
        "input": wf.input,
        "output": wf.output,
        "status": wf.status,
        "workflowId": wf.workflowId,
        "parentWorkflowId": wf.parentWorkflowId,
        "parentWorkflowTaskId": wf.parentWorkflowTaskId,
        "workflowType": wf.workflowName,
        "version": wf.workflowVersion,
        "correlationId": wf.correlationId,
        "reasonForIncompletion": wf.reasonForIncompletion,
        "schemaVersion": definition.schemaVersion,
        "variables": wf.variables,
    }


def evaluation_context(state: State, extra: list[TaskRecord] | None = None) -> Json:
    """`workflow` plus one entry per task reference; the latest attempt (and, inside a
    loop, the latest iteration under the base reference) wins."""
    ctx: Json = {"workflow": workflow_context(state.workflow, state.definition)}
    for task in [*state.tasks, *(extra or [])]:
        ctx[task.base_ref] = task_context(task)
    return ctx


# -- task definitions in force ----------------------------------------------------------


def effective_task_def(wt: WorkflowTask, lookup: TaskDefLookup) -> TaskDef:
    if wt.taskDefinition is not None:
        return wt.taskDefinition
    registered = lookup(wt.name or "")
    if registered is not None:
        return registered
    if wt.type in WORKER_TYPES:
        return TaskDef(name=wt.name)  # Conductor's ad-hoc definition: the TaskDef defaults
    return TaskDef(name=wt.name, retryCount=0, responseTimeoutSeconds=0)


def _task_def_of(task: TaskRecord) -> TaskDef:
    return TaskDef.model_validate(task.taskDefinition or {})


# -- scheduling -------------------------------------------------------------------------


def _resolve_input(state: State, wt: WorkflowTask, td: TaskDef, task_id: str) -> Json:
    raw: Json = copy.deepcopy(wt.inputParameters)
    for key, value in td.inputTemplate.items():
        raw.setdefault(key, value)
    resolved = expressions.resolve(raw, evaluation_context(state), task_id=task_id)
    assert isinstance(resolved, dict)
    # Conductor: a key that resolved to null falls back to the TaskDef's template value.
    for key, value in td.inputTemplate.items():
        if resolved.get(key) is None:
            resolved[key] = copy.deepcopy(value)
    return resolved


def _timeout_deadline(task: TaskRecord, td: TaskDef) -> int | None:
    """The earliest moment a timeout check could change this task (None: never)."""
    deadlines: list[int] = []
    if task.status == T_SCHEDULED and td.pollTimeoutSeconds:
        base = task.scheduledTime + (task.startDelayInSeconds + task.callbackAfterSeconds) * 1000
        deadlines.append(base + td.pollTimeoutSeconds * 1000)
    if task.status == T_IN_PROGRESS and task.taskType not in NEVER_RETRIED:
        if (
            task.responseTimeoutSeconds > 0
            and task.workflowTask.get("type", "SIMPLE") in WORKER_TYPES
        ):
            deadlines.append(
                task.updateTime + (task.responseTimeoutSeconds + task.callbackAfterSeconds) * 1000
            )
        if td.timeoutSeconds > 0 and task.startTime:
            deadlines.append(task.startTime + td.timeoutSeconds * 1000)
    return min(deadlines) if deadlines else None


def refresh_timeout(task: TaskRecord) -> None:
    task.timeoutAt = None if task.terminal else _timeout_deadline(task, _task_def_of(task))


def new_task(
    state: State,
    wt: WorkflowTask,
    *,
    retry_of: TaskRecord | None = None,
    delay_seconds: int = 0,
) -> TaskRecord:
    td = effective_task_def(wt, state.task_def)
    task_id = state.new_task_id()
    ref = retry_of.referenceTaskName if retry_of else (wt.taskReferenceName or "")
    task_type = (wt.name or "") if wt.type in WORKER_TYPES else wt.type
    now = state.now
    task = TaskRecord(
        taskId=task_id,
        workflowInstanceId=state.workflow.workflowId,
        referenceTaskName=ref,
        taskType=task_type,
        taskDefName=wt.name or "",
        status=T_SCHEDULED,
        inputData=_resolve_input(state, wt, td, task_id),
        workflowTask=wt.to_json(),
        retryCount=retry_of.retryCount + 1 if retry_of else 0,
        iteration=retry_of.iteration if retry_of else 0,
        scheduledTime=now,
        updateTime=now,
        startDelayInSeconds=0 if retry_of else wt.startDelay,
        callbackAfterSeconds=delay_seconds,
        responseTimeoutSeconds=td.responseTimeoutSeconds,
        retriedTaskId=retry_of.taskId if retry_of else None,
        correlationId=state.workflow.correlationId,
        workflowType=state.workflow.workflowName,
        workflowPriority=state.workflow.priority,
        firstScheduledTime=retry_of.firstScheduledTime if retry_of else now,
        taskDefinition=td.to_json(),
    )
    if wt.type not in WORKER_TYPES:
        # Baton runs these itself: they start at once (Conductor's IN_PROGRESS system tasks).
        task.status = T_IN_PROGRESS
        task.startTime = now
    refresh_timeout(task)
    return task


def retry_delay_seconds(td: TaskDef, retry_count: int) -> int:
    if td.retryLogic == "LINEAR_BACKOFF":
        delay = td.retryDelaySeconds * td.backoffScaleFactor * (retry_count + 1)
    elif td.retryLogic == "EXPONENTIAL_BACKOFF":
        delay = td.retryDelaySeconds * (2**retry_count)
    else:
        delay = td.retryDelaySeconds
    if td.maxRetryDelaySeconds > 0:
        delay = min(delay, td.maxRetryDelaySeconds)
    return max(delay, 0)


def _retry(state: State, task: TaskRecord) -> TaskRecord | None:
    wt = WorkflowTask.model_validate(task.workflowTask)
    if task.status not in T_RETRIABLE or wt.type in NEVER_RETRIED:
        return None
    td = _task_def_of(task)
    allowed = wt.retryCount if wt.retryCount is not None else td.retryCount
    if task.retryCount >= allowed:
        return None
    if (
        td.totalTimeoutSeconds
        and state.now - task.firstScheduledTime >= td.totalTimeoutSeconds * 1000
    ):
        return None
    retry = new_task(
        state, wt, retry_of=task, delay_seconds=retry_delay_seconds(td, task.retryCount)
    )
    # Keep the definition snapshot of the first attempt: one task, one contract.
    retry.taskDefinition = task.taskDefinition
    retry.responseTimeoutSeconds = task.responseTimeoutSeconds
    refresh_timeout(retry)
    return retry


# -- timeouts ---------------------------------------------------------------------------


def _check_task_timeouts(state: State, task: TaskRecord, d: Decision) -> bool:
    """Time the task out when one of its clocks ran out. True if the workflow must time out.

    As Conductor: the TaskDef's own timeouts (with their policy) first, then a silent
    worker's response timeout, which always times the task out for a retry.
    """
    if task.terminal or task.timeoutAt is None or state.now < task.timeoutAt:
        return False
    td = _task_def_of(task)
    now = state.now
    policy_reason: str | None = None
    if task.status == T_IN_PROGRESS and td.timeoutSeconds > 0 and task.startTime:
        if now - task.startTime >= td.timeoutSeconds * 1000:
            policy_reason = (
                f"Task timed out after {td.timeoutSeconds} seconds. Timeout configured as "
                f"{td.timeoutSeconds} seconds. Timeout policy configured to {td.timeoutPolicy}"
            )
    elif task.status == T_SCHEDULED and td.pollTimeoutSeconds:
        base = task.scheduledTime + (task.startDelayInSeconds + task.callbackAfterSeconds) * 1000
        if now - base >= td.pollTimeoutSeconds * 1000:
            policy_reason = (
                f"Task poll timed out after {td.pollTimeoutSeconds} seconds. "
                f"Timeout policy configured to {td.timeoutPolicy}"
            )
    if policy_reason is not None and td.timeoutPolicy != "ALERT_ONLY":
        _time_out(task, now, policy_reason)
        d.touch(task)
        return td.timeoutPolicy == "TIME_OUT_WF"
    is_worker = task.workflowTask.get("type", "SIMPLE") in WORKER_TYPES
    if (
        task.status == T_IN_PROGRESS
        and is_worker
        and task.responseTimeoutSeconds > 0
        and now - task.updateTime
        >= (task.responseTimeoutSeconds + task.callbackAfterSeconds) * 1000
    ):
        _time_out(
            task,
            now,
            f"responseTimeout: {task.responseTimeoutSeconds} exceeded for the taskId: "
            f"{task.taskId} with Task Status: {task.status}",
        )
        d.touch(task)
        return False
    # Not (or no longer) due: point the timer at the next deadline; an ALERT_ONLY timeout
    # that fired drops out of the timer so it alerts once.
    refresh_timeout(task)
    if policy_reason is not None and task.timeoutAt is not None and task.timeoutAt <= now:
        task.timeoutAt = None
    d.touch(task)
    return False


def _time_out(task: TaskRecord, now: int, reason: str) -> None:
    task.status = T_TIMED_OUT
    task.reasonForIncompletion = reason
    task.endTime = now
    task.updateTime = now
    task.timeoutAt = None


def workflow_deadline(wf: WorkflowRecord, definition: WorkflowDef) -> int | None:
    if definition.timeoutSeconds <= 0 or definition.timeoutPolicy != "TIME_OUT_WF":
        return None
    return (wf.lastRetriedTime or wf.createTime) + definition.timeoutSeconds * 1000


# -- ending the workflow ----------------------------------------------------------------


def _end(
    state: State,
    d: Decision,
    status: str,
    reason: str | None,
    failed: TaskRecord | None = None,
) -> Decision:
    d.status = status
    d.reason = reason
    d.failed_task = failed
    for task in state.tasks:
        if not task.terminal:
            task.status = T_CANCELED
            task.endTime = state.now
            task.updateTime = state.now
            task.timeoutAt = None
            d.touch(task)
    d.output = workflow_output(state)
    return d


def workflow_output(state: State) -> Json:
    """Conductor's rule: resolved outputParameters if any, else the last task's output."""
    if state.definition.outputParameters:
        resolved = expressions.resolve(
            copy.deepcopy(state.definition.outputParameters), evaluation_context(state)
        )
        return resolved if isinstance(resolved, dict) else {}
    if state.tasks:
        last = max(state.tasks, key=lambda t: t.seq)
        return dict(last.outputData)
    return {}


def _failure_status(task_status: str) -> str:
    if task_status == T_CANCELED:
        return WF_TERMINATED
    if task_status == T_TIMED_OUT:
        return WF_TIMED_OUT
    return WF_FAILED


def failure_reason(task: TaskRecord, wf_status: str) -> str:
    return (
        f"Task {task.taskId} failed with status: {wf_status} and reason: "
        f"'{task.reasonForIncompletion}'"
    )


def _record_failure(wf: WorkflowRecord, task: TaskRecord, d: Decision) -> None:
    if task.status in (T_FAILED, T_FAILED_WITH_TERMINAL_ERROR):
        if task.referenceTaskName not in wf.failedReferenceTaskNames:
            wf.failedReferenceTaskNames.append(task.referenceTaskName)
            d.workflow_changed = True
        if task.taskDefName not in wf.failedTaskNames:
            wf.failedTaskNames.append(task.taskDefName)
            d.workflow_changed = True


# -- the decision -----------------------------------------------------------------------


def start_tasks(state: State) -> list[TaskRecord]:
    """The first task(s) of a fresh workflow."""
    first = state.definition.tasks[0] if state.definition.tasks else None
    return [new_task(state, first)] if first is not None else []


def decide(state: State) -> Decision:
    d = Decision()
    wf = state.workflow
    if wf.status != WF_RUNNING:
        return d

    deadline = workflow_deadline(wf, state.definition)
    if deadline is not None and state.now >= deadline:
        timeout = state.definition.timeoutSeconds
        return _end(
            state,
            d,
            WF_TIMED_OUT,
            f"Workflow timed out after {timeout} seconds. Timeout configured as {timeout} "
            "seconds. Timeout policy configured to TIME_OUT_WF",
        )

    if not state.tasks:
        d.schedule.extend(start_tasks(state))
        if not d.schedule:
            return _end(state, d, WF_COMPLETED, None)
        return d

    scheduled_refs = {t.referenceTaskName for t in state.tasks if not t.retried}
    for task in sorted(state.tasks, key=lambda t: t.seq):
        if task.retried or task.executed or task.status == T_SKIPPED:
            continue  # a skipped task is passed over when its predecessor is done
        if _check_task_timeouts(state, task, d):
            return _end(state, d, WF_TIMED_OUT, failure_reason(task, WF_TIMED_OUT), task)
        if not task.terminal:
            continue
        if task.status in (T_COMPLETED, T_COMPLETED_WITH_ERRORS, T_SKIPPED):
            _mark_executed(task, d)
            _schedule_next(state, task, d, scheduled_refs)
            continue
        _record_failure(wf, task, d)
        retry = _retry(state, task)
        if retry is not None:
            task.retried = True
            d.touch(task)
            d.schedule.append(retry)
            continue
        wt = WorkflowTask.model_validate(task.workflowTask)
        if wt.optional:
            task.status = T_COMPLETED_WITH_ERRORS
            _mark_executed(task, d)
            _schedule_next(state, task, d, scheduled_refs)
            continue
        status = _failure_status(task.status)
        _mark_executed(task, d)
        return _end(state, d, status, failure_reason(task, status), task)

    if not d.schedule and all(t.terminal for t in state.tasks):
        return _end(state, d, WF_COMPLETED, None)
    return d


def _mark_executed(task: TaskRecord, d: Decision) -> None:
    task.executed = True
    task.timeoutAt = None
    d.touch(task)


def _schedule_next(state: State, task: TaskRecord, d: Decision, scheduled_refs: set[str]) -> None:
    following, _container = state.index.next_after(task.base_ref)
    while following is not None:
        ref = following.taskReferenceName or ""
        skipped = next(
            (t for t in state.tasks if t.referenceTaskName == ref and t.status == T_SKIPPED), None
        )
        if skipped is None:
            break
        # Skipped ahead of time (the skip-task API): pass over it to the one after.
        if not skipped.executed:
            _mark_executed(skipped, d)
        following, _container = state.index.next_after(ref)
    if following is None or following.taskReferenceName in scheduled_refs:
        return
    scheduled_refs.add(following.taskReferenceName or "")
    d.schedule.append(new_task(state, following))


def apply_task_result(task: TaskRecord, result: Mapping[str, Any], now: int) -> None:
    """A worker's (or a system task's) report, as Conductor's updateTask applies it."""
    status = result["status"]
    if "outputData" in result and result["outputData"] is not None:
        task.outputData = dict(result["outputData"])
    reason = result.get("reasonForIncompletion")
    if reason:
        task.reasonForIncompletion = str(reason)[:500]
    if result.get("workerId"):
        task.workerId = result["workerId"]
    task.updateTime = now
    if status == T_IN_PROGRESS:
        task.callbackAfterSeconds = int(result.get("callbackAfterSeconds") or 0)
        task.status = T_IN_PROGRESS
    else:
        task.status = status
        task.endTime = now
    refresh_timeout(task)
