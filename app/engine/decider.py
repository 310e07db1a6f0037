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
    # The decider should run again at once (something ended during this step).
    again: bool = False

    def touch(self, task: TaskRecord) -> None:
        self.changed[task.taskId] = task

    @property
    def empty(self) -> bool:
        return not (
            self.schedule or self.changed or self.status or self.workflow_changed or self.again
        )


@dataclass
class State:
    definition: WorkflowDef
    index: DefIndex
    workflow: WorkflowRecord
    tasks: list[TaskRecord]
    now: int
    task_def: TaskDefLookup
    new_task_id: Callable[[], str] = new_id
    # Evaluates a JavaScript expression with `$` bound to the given input (SWITCH and
    # DO_WHILE conditions). None: such expressions fail the task.
    evaluate_js: Callable[[str, Json], Any] | None = None
    # Tasks created earlier in the same decision: later ones may refer to them.
    scheduled: list[TaskRecord] = field(default_factory=list)


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
    for task in [*state.tasks, *state.scheduled, *(extra or [])]:
        if not task.retried:
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
    iteration_of: int | None = None,
) -> TaskRecord:
    td = effective_task_def(wt, state.task_def)
    task_id = state.new_task_id()
    ref = retry_of.referenceTaskName if retry_of else (wt.taskReferenceName or "")
    iteration = retry_of.iteration if retry_of else 0
    if retry_of is None and iteration_of is not None:
        iteration = iteration_of
        ref = f"{ref}__{iteration}"
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
        iteration=iteration,
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
    if wt.type == "HTTP" and wt.asyncComplete:
        # Conductor's HTTP mapper hands the WorkflowTask's flag to the task input (an
        # explicit input key still wins).
        task.inputData.setdefault("asyncComplete", True)
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
    return map_task(state, first) if first is not None else []


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

    state.scheduled = d.schedule
    if not state.tasks:
        start_tasks(state)
        if not d.schedule:
            return _end(state, d, WF_COMPLETED, None)
        return d

    scheduled_refs = {t.referenceTaskName for t in state.tasks if not t.retried}
    for task in sorted(state.tasks, key=lambda t: t.seq):
        if task.retried or task.executed or task.status == T_SKIPPED:
            continue  # a skipped task is passed over when its predecessor is done
        if _check_task_timeouts(state, task, d):
            return _end(state, d, WF_TIMED_OUT, failure_reason(task, WF_TIMED_OUT), task)
        if task.status == T_IN_PROGRESS and task.taskType in JOIN_TYPES:
            _evaluate_join(state, task, d)
        if not task.terminal:
            continue
        if task.status in (T_COMPLETED, T_COMPLETED_WITH_ERRORS, T_SKIPPED):
            _mark_executed(task, d)
            if task.taskType == "TERMINATE":
                return _terminate(state, d, task)
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

    unprocessed = any(
        t.terminal and not t.executed and not t.retried and t.status != T_SKIPPED
        for t in state.tasks
    )
    if unprocessed:
        # A task ended during this step (a JOIN or a loop finishing): look again before
        # deciding the workflow is done.
        d.again = True
    elif not d.schedule and all(t.terminal for t in state.tasks):
        return _end(state, d, WF_COMPLETED, None)
    return d


def _mark_executed(task: TaskRecord, d: Decision) -> None:
    task.executed = True
    task.timeoutAt = None
    d.touch(task)


def _schedule_next(state: State, task: TaskRecord, d: Decision, scheduled_refs: set[str]) -> None:
    if task.taskType in ("SWITCH", "DECISION") and task.inputData.get("hasChildren"):
        return  # the selected case runs; the flow goes on from its last task
    following, container = state.index.next_after(task.base_ref)
    if following is None and container is not None and container.type == "DO_WHILE":
        _advance_loop(state, container, d, scheduled_refs)
        return
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
    if following is None:
        return
    _schedule(state, following, d, scheduled_refs)


def _schedule(state: State, wt: WorkflowTask, d: Decision, scheduled_refs: set[str]) -> None:
    """Schedule `wt` (and what it brings: a case, fork branches, a loop body) once."""
    if _ref_in_scope(state, wt) in scheduled_refs:
        return
    for task in map_task(state, wt):
        scheduled_refs.add(task.referenceTaskName)


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


# -- control flow: SWITCH, FORK/JOIN, DO_WHILE, DYNAMIC, TERMINATE ----------------------------

JOIN_TYPES = frozenset({"JOIN", "EXCLUSIVE_JOIN"})
FAILED_STATES = frozenset({T_FAILED, T_FAILED_WITH_TERMINAL_ERROR, T_TIMED_OUT, T_CANCELED})


class ScriptFailure(Exception):
    """A SWITCH or DO_WHILE expression could not be evaluated."""


def _latest(state: State) -> dict[str, TaskRecord]:
    """The current attempt of every task by full reference name."""
    latest: dict[str, TaskRecord] = {}
    for task in [*state.tasks, *state.scheduled]:
        if not task.retried:
            latest[task.referenceTaskName] = task
    return latest


def _enclosing_loop(state: State, wt: WorkflowTask) -> WorkflowTask | None:
    slot = state.index.slots.get(wt.taskReferenceName or "")
    while slot is not None and slot.parent is not None:
        if slot.parent.type == "DO_WHILE":
            return slot.parent
        slot = state.index.slots.get(slot.parent.taskReferenceName or "")
    return None


def _loop_record(state: State, loop: WorkflowTask) -> TaskRecord | None:
    found = None
    for task in [*state.tasks, *state.scheduled]:
        if task.base_ref == loop.taskReferenceName and not task.retried:
            found = task
    return found


def _loop_iteration(state: State, wt: WorkflowTask) -> int | None:
    loop = _enclosing_loop(state, wt)
    if loop is None:
        return None
    record = _loop_record(state, loop)
    return record.iteration if record is not None else None


def _ref_in_scope(state: State, wt: WorkflowTask) -> str:
    iteration = _loop_iteration(state, wt)
    ref = wt.taskReferenceName or ""
    return f"{ref}__{iteration}" if iteration else ref


def _complete_now(task: TaskRecord, now: int, output: Json | None = None) -> None:
    task.status = T_COMPLETED
    task.endTime = now
    task.updateTime = now
    task.timeoutAt = None
    if output is not None:
        task.outputData = output


def _fail_now(task: TaskRecord, now: int, reason: str, *, terminal: bool = True) -> None:
    task.status = T_FAILED_WITH_TERMINAL_ERROR if terminal else T_FAILED
    task.reasonForIncompletion = reason[:500]
    task.endTime = now
    task.updateTime = now
    task.timeoutAt = None


def map_task(state: State, wt: WorkflowTask) -> list[TaskRecord]:
    """Create the task(s) that scheduling `wt` brings, add them to the decision, return
    them (Conductor's task mappers)."""
    created: list[TaskRecord] = []

    def add(task: TaskRecord) -> TaskRecord:
        state.scheduled.append(task)
        created.append(task)
        return task

    iteration = _loop_iteration(state, wt)
    kind = wt.type
    if kind in ("SWITCH", "DECISION"):
        task = add(new_task(state, wt, iteration_of=iteration))
        _map_switch(state, wt, task, created)
    elif kind == "FORK_JOIN":
        fork = add(new_task(state, wt, iteration_of=iteration))
        fork.taskType = "FORK"
        _complete_now(fork, state.now)
        for branch in wt.forkTasks:
            if branch:
                created.extend(map_task(state, branch[0]))
        _add_join(state, wt, fork, [b[-1].taskReferenceName or "" for b in wt.forkTasks if b], add)
    elif kind == "FORK_JOIN_DYNAMIC":
        fork = add(new_task(state, wt, iteration_of=iteration))
        fork.taskType = "FORK"
        _map_dynamic_fork(state, wt, fork, add)
    elif kind == "DO_WHILE":
        loop = add(new_task(state, wt, iteration_of=iteration))
        _start_loop(state, wt, loop, created)
    elif kind == "DYNAMIC":
        task = new_task(state, wt, iteration_of=iteration)
        name = task.inputData.get(wt.dynamicTaskNameParam or "")
        if not isinstance(name, str) or not name or state.task_def(name) is None:
            add(task)
            _fail_now(
                task,
                state.now,
                f"Invalid task specified.  Cannot find task by name {name} in the task definitions",
            )
        else:
            resolved = wt.model_copy(update={"name": name})
            add(new_task(state, resolved, iteration_of=iteration))
    else:
        add(new_task(state, wt, iteration_of=iteration))
    return created


# SWITCH / DECISION


def _case_of(state: State, wt: WorkflowTask, task_input: Json) -> str:
    if wt.type == "DECISION":
        if wt.caseValueParam:
            return expressions.java_str(task_input.get(wt.caseValueParam))
        return expressions.java_str(_js(state, wt.caseExpression or "", task_input))
    if (wt.evaluatorType or "value-param") == "value-param":
        return expressions.java_str(task_input.get(wt.expression or ""))
    return expressions.java_str(_js(state, wt.expression or "", task_input))


def _js(state: State, expression: str, bindings: Json) -> Any:
    if state.evaluate_js is None:
        raise ScriptFailure("JavaScript evaluation is not available")
    try:
        return state.evaluate_js(expression, bindings)
    except Exception as exc:  # the evaluator's errors carry the script's message
        raise ScriptFailure(str(exc) or type(exc).__name__) from None


def _map_switch(
    state: State, wt: WorkflowTask, task: TaskRecord, created: list[TaskRecord]
) -> None:
    try:
        case = _case_of(state, wt, task.inputData)
    except ScriptFailure as exc:
        _fail_now(task, state.now, f"Error while evaluating the case expression: {exc}")
        return
    if wt.type == "DECISION":
        branch = wt.decisionCases.get(case) or wt.defaultCase
        _complete_now(task, state.now, {"caseOutput": [case]})
    else:
        branch = wt.decisionCases.get(case, wt.defaultCase)
        task.inputData["case"] = case
        _complete_now(task, state.now, {"evaluationResult": [case], "selectedCase": case})
    if branch:
        # As Conductor: a switch with a case to run hands the flow over to that case.
        task.inputData["hasChildren"] = True
        created.extend(map_task(state, branch[0]))


# FORK_JOIN / JOIN


def _add_join(
    state: State,
    fork_wt: WorkflowTask,
    fork: TaskRecord,
    join_on: list[str],
    add: Callable[[TaskRecord], TaskRecord],
) -> None:
    join_wt, _ = state.index.next_after(fork_wt.taskReferenceName or "")
    if join_wt is None or join_wt.type != "JOIN":
        _fail_now(
            fork,
            state.now,
            "Fork task definition is not followed by a join task.  Check the blueprint",
        )
        return
    iteration = _loop_iteration(state, join_wt)
    join = add(new_task(state, join_wt, iteration_of=iteration))
    suffix = f"__{iteration}" if iteration else ""
    refs = join_wt.joinOn if join_wt.joinOn else join_on
    join.inputData["joinOn"] = [f"{ref}{suffix}" for ref in refs]


def _map_dynamic_fork(
    state: State, wt: WorkflowTask, fork: TaskRecord, add: Callable[[TaskRecord], TaskRecord]
) -> None:
    try:
        forked = _dynamic_fork_tasks(wt, fork.inputData)
    except ValueError as exc:
        _fail_now(fork, state.now, str(exc))
        return
    fork.inputData["forkedTasks"] = [t.taskReferenceName for t in forked]
    _complete_now(fork, state.now)
    refs: list[str] = []
    for task_wt in forked:
        task = add(new_task(state, task_wt))
        refs.append(task.referenceTaskName)
    join_wt, _ = state.index.next_after(wt.taskReferenceName or "")
    if join_wt is None or join_wt.type != "JOIN":
        _fail_now(
            fork,
            state.now,
            "Fork task definition is not followed by a join task.  Check the blueprint",
        )
        return
    join = add(new_task(state, join_wt))
    join.inputData["joinOn"] = refs


def _dynamic_fork_tasks(wt: WorkflowTask, task_input: Json) -> list[WorkflowTask]:
    """The classic form (a list of WorkflowTasks and a map of inputs) or the simple one
    (forkTaskName or forkTaskWorkflow, with forkTaskInputs)."""
    if wt.dynamicForkTasksParam:
        raw = task_input.get(wt.dynamicForkTasksParam) or []
        inputs = task_input.get(wt.dynamicForkTasksInputParamName or "") or {}
        if not isinstance(raw, list):
            raise ValueError("Dynamic fork tasks are not a list")
        if not isinstance(inputs, dict):
            raise ValueError(
                "Input to the dynamically forked tasks is not a map -> expecting a map of K,V "
                "but found " + type(inputs).__name__
            )
        out = []
        for item in raw:
            forked = WorkflowTask.model_validate(item)
            if not forked.taskReferenceName:
                raise ValueError("A dynamically forked task has no taskReferenceName")
            given = inputs.get(forked.taskReferenceName)
            if isinstance(given, dict):
                forked.inputParameters = given
            out.append(forked)
        return out
    fork_inputs = task_input.get("forkTaskInputs") or []
    if not isinstance(fork_inputs, list):
        raise ValueError("forkTaskInputs is not a list")
    name = task_input.get("forkTaskName") or task_input.get("forkTaskWorkflow")
    if not isinstance(name, str) or not name:
        raise ValueError("forkTaskName or forkTaskWorkflow is required")
    out = []
    for i, given in enumerate(fork_inputs):
        item_input = {**given} if isinstance(given, dict) else {"input": given}
        item_input["__index"] = i
        if task_input.get("forkTaskWorkflow"):
            forked = WorkflowTask(
                name=name,
                taskReferenceName=f"_{name}_{i}",
                type="SUB_WORKFLOW",
                inputParameters=item_input,
                subWorkflowParam={
                    "name": name,
                    "version": task_input.get("forkTaskWorkflowVersion"),
                },
            )
        else:
            forked = WorkflowTask(
                name=name,
                taskReferenceName=f"_{name}_{i}",
                type=str(task_input.get("forkTaskType") or "SIMPLE"),
                inputParameters=item_input,
            )
        out.append(forked)
    return out


def _evaluate_join(state: State, join: TaskRecord, d: Decision) -> None:
    latest = _latest(state)
    given = join.inputData.get("joinOn")
    if given is None:
        # A join not scheduled by a fork (an EXCLUSIVE_JOIN after a SWITCH): the definition's.
        suffix = f"__{join.iteration}" if join.iteration else ""
        given = [f"{ref}{suffix}" for ref in join.workflowTask.get("joinOn") or []]
    join_on = [r for r in given if isinstance(r, str)]
    if join.taskType == "EXCLUSIVE_JOIN":
        _evaluate_exclusive_join(state, join, join_on, latest, d)
        return
    with_errors = False
    for ref in join_on:
        task = latest.get(ref)
        if task is None or not task.terminal:
            return
        if task.status in FAILED_STATES:
            if WorkflowTask.model_validate(task.workflowTask).optional:
                with_errors = True
                continue
            _fail_now(join, state.now, f"Task {ref} ended {task.status}", terminal=True)
            d.touch(join)
            return
        with_errors |= task.status == T_COMPLETED_WITH_ERRORS
    output = {ref: latest[ref].outputData for ref in join_on if latest[ref].outputData}
    _complete_now(join, state.now, output)
    if with_errors:
        join.status = T_COMPLETED_WITH_ERRORS
    d.touch(join)


def _evaluate_exclusive_join(
    state: State, join: TaskRecord, join_on: list[str], latest: dict[str, TaskRecord], d: Decision
) -> None:
    wt = WorkflowTask.model_validate(join.workflowTask)
    for refs in (join_on, wt.defaultExclusiveJoinTask):
        for ref in refs:
            task = latest.get(ref)
            if task is None or task.status == T_SKIPPED or not task.terminal:
                continue
            if task.status in FAILED_STATES:
                _fail_now(join, state.now, f"Task {ref} ended {task.status}")
            else:
                _complete_now(join, state.now, dict(task.outputData))
            d.touch(join)
            return


# DO_WHILE


def _loop_items(state: State, wt: WorkflowTask, loop: TaskRecord) -> list[Any] | None:
    raw: Any = loop.inputData.get("items", loop.inputData.get("_items"))
    if raw is None and wt.items:
        raw = expressions.resolve(wt.items, evaluation_context(state))
    return raw if isinstance(raw, list) else None


def _start_loop(
    state: State, wt: WorkflowTask, loop: TaskRecord, created: list[TaskRecord]
) -> None:
    items = _loop_items(state, wt, loop)
    if items is not None and not items:
        loop.iteration = 0
        _complete_now(loop, state.now, {"iteration": 0})
        return
    loop.iteration = 1
    loop.outputData = {"iteration": 1}
    if items is not None:
        loop.outputData.update(loopItem=items[0], loopIndex=0)
    if wt.loopOver:
        created.extend(map_task(state, wt.loopOver[0]))


def _body_refs(wt: WorkflowTask) -> set[str]:
    refs: set[str] = set()
    stack = list(wt.loopOver)
    while stack:
        task = stack.pop()
        refs.add(task.taskReferenceName or "")
        stack.extend(task.children())
    return refs


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value > 0
    return False


def _advance_loop(state: State, wt: WorkflowTask, d: Decision, scheduled_refs: set[str]) -> None:
    """The loop body finished an iteration: record its outputs, then go round again or end."""
    loop = _loop_record(state, wt)
    if loop is None or loop.terminal:
        return
    n = loop.iteration
    body = _body_refs(wt)
    outputs = {
        t.base_ref: t.outputData
        for t in [*state.tasks, *state.scheduled]
        if t.iteration == n and t.base_ref in body and not t.retried
    }
    loop.outputData[str(n)] = outputs
    loop.outputData["iteration"] = n
    keep = loop.inputData.get("keepLastN")
    if isinstance(keep, int) and keep > 0:
        for old in range(1, n - keep + 1):
            loop.outputData.pop(str(old), None)
    d.touch(loop)
    items = _loop_items(state, wt, loop)
    if items is not None:
        again = n < len(items)
    else:
        bindings = {**loop.inputData, wt.taskReferenceName or "": loop.outputData, **outputs}
        try:
            again = _truthy(_js(state, wt.loopCondition or "false", bindings))
        except ScriptFailure as exc:
            _fail_now(loop, state.now, f"Error while evaluating the loop condition: {exc}")
            return
    if not again:
        _complete_now(loop, state.now)
        return
    loop.iteration = n + 1
    loop.outputData["iteration"] = n + 1
    if items is not None:
        loop.outputData.update(loopItem=items[n], loopIndex=n)
    if wt.loopOver:
        _schedule(state, wt.loopOver[0], d, scheduled_refs)


# TERMINATE


def _terminate(state: State, d: Decision, task: TaskRecord) -> Decision:
    status = str(task.inputData.get("terminationStatus") or WF_COMPLETED).upper()
    reason = task.inputData.get("terminationReason") or (
        f"Workflow is {status} by TERMINATE task: {task.taskId}"
    )
    _end(state, d, status, str(reason), task if status != WF_COMPLETED else None)
    d.output = dict(task.outputData)
    return d
