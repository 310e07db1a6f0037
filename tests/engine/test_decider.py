"""The decider alone: definition + state in, decision out. No database, no clock."""

from __future__ import annotations

import itertools
from typing import Any

from app.engine import decider
from app.engine.definition import DefIndex
from app.engine.model import TaskRecord, WorkflowRecord
from app.schemas.metadata import TaskDef, WorkflowDef

NOW = 1_000_000


def definition(*refs: str, **extra: Any) -> WorkflowDef:
    return WorkflowDef.model_validate(
        {
            "name": "wf",
            "tasks": [{"name": f"t_{r}", "taskReferenceName": r} for r in refs],
            **extra,
        }
    )


def state(
    wd: WorkflowDef,
    tasks: list[TaskRecord] | None = None,
    now: int = NOW,
    defs: dict[str, TaskDef] | None = None,
    **wf: Any,
) -> decider.State:
    counter = itertools.count(1)
    fields: dict[str, Any] = {"status": "RUNNING", "createTime": 0, **wf}
    record = WorkflowRecord(workflowId="wf-1", workflowName="wf", workflowVersion=1, **fields)
    return decider.State(
        definition=wd,
        index=DefIndex(wd),
        workflow=record,
        tasks=tasks or [],
        now=now,
        task_def=(defs or {}).get,
        new_task_id=lambda: f"task-{next(counter)}",
    )


def scheduled(s: decider.State, ref: str) -> TaskRecord:
    wt = s.index.task(ref)
    assert wt is not None
    task = decider.new_task(s, wt)
    task.seq = len(s.tasks) + 1
    s.tasks.append(task)
    return task


def test_fresh_workflow_schedules_its_first_task() -> None:
    d = decider.decide(state(definition("a", "b")))
    assert [t.referenceTaskName for t in d.schedule] == ["a"]
    assert d.schedule[0].status == "SCHEDULED"


def test_worker_task_type_is_the_task_name() -> None:
    d = decider.decide(state(definition("a")))
    assert d.schedule[0].taskType == "t_a"


def test_completed_task_schedules_the_next_one() -> None:
    s = state(definition("a", "b"))
    scheduled(s, "a").status = "COMPLETED"
    d = decider.decide(s)
    assert [t.referenceTaskName for t in d.schedule] == ["b"]
    assert s.tasks[0].executed


def test_last_completed_task_completes_the_workflow_with_its_output() -> None:
    s = state(definition("a"))
    task = scheduled(s, "a")
    task.status = "COMPLETED"
    task.outputData = {"k": 1}
    d = decider.decide(s)
    assert (d.status, d.output) == ("COMPLETED", {"k": 1})


def test_running_task_means_nothing_to_do() -> None:
    s = state(definition("a", "b"))
    scheduled(s, "a").status = "IN_PROGRESS"
    assert decider.decide(s).empty


def test_paused_workflow_gets_no_decision() -> None:
    s = state(definition("a", "b"), status="PAUSED")
    assert decider.decide(s).empty


def test_failed_task_with_retries_left_gets_a_delayed_retry() -> None:
    defs = {"t_a": TaskDef(name="t_a", retryCount=2, retryDelaySeconds=7)}
    s = state(definition("a"), defs=defs)
    task = scheduled(s, "a")
    task.status = "FAILED"
    d = decider.decide(s)
    [retry] = d.schedule
    assert (retry.retryCount, retry.retriedTaskId, retry.callbackAfterSeconds) == (
        1,
        task.taskId,
        7,
    )
    assert task.retried


def test_linear_backoff_grows_with_each_retry() -> None:
    td = TaskDef(name="x", retryLogic="LINEAR_BACKOFF", retryDelaySeconds=2, backoffScaleFactor=3)
    assert [decider.retry_delay_seconds(td, n) for n in range(3)] == [6, 12, 18]


def test_exponential_backoff_doubles_up_to_the_cap() -> None:
    td = TaskDef(
        name="x", retryLogic="EXPONENTIAL_BACKOFF", retryDelaySeconds=1, maxRetryDelaySeconds=5
    )
    assert [decider.retry_delay_seconds(td, n) for n in range(4)] == [1, 2, 4, 5]


def test_workflow_task_retry_count_overrides_the_task_def() -> None:
    wd = definition("a")
    wd.tasks[0].retryCount = 0
    s = state(wd, defs={"t_a": TaskDef(name="t_a", retryCount=5)})
    scheduled(s, "a").status = "FAILED"
    assert decider.decide(s).status == "FAILED"


def test_timed_out_workflow_cancels_its_pending_tasks() -> None:
    wd = definition("a", timeoutSeconds=10, timeoutPolicy="TIME_OUT_WF")
    s = state(wd, now=10_000)
    task = scheduled(s, "a")
    d = decider.decide(s)
    assert d.status == "TIMED_OUT"
    assert task.status == "CANCELED"


def test_alert_only_workflow_timeout_keeps_it_running() -> None:
    wd = definition("a", timeoutSeconds=10, timeoutPolicy="ALERT_ONLY")
    s = state(wd, now=10_000)
    scheduled(s, "a")
    assert decider.decide(s).status is None


def test_task_timeout_with_time_out_wf_policy_times_out_the_workflow() -> None:
    defs = {
        "t_a": TaskDef(
            name="t_a", timeoutSeconds=5, responseTimeoutSeconds=5, timeoutPolicy="TIME_OUT_WF"
        )
    }
    s = state(definition("a"), defs=defs, now=1_000)
    task = scheduled(s, "a")
    task.status, task.startTime = "IN_PROGRESS", 1_000
    decider.refresh_timeout(task)
    s.now = 6_000
    d = decider.decide(s)
    assert d.status == "TIMED_OUT"
    assert task.status == "TIMED_OUT"


def test_poll_timeout_times_out_a_task_nobody_polls() -> None:
    defs = {"t_a": TaskDef(name="t_a", pollTimeoutSeconds=3, retryCount=0, timeoutPolicy="RETRY")}
    s = state(definition("a"), defs=defs, now=0)
    task = scheduled(s, "a")
    s.now = 3_000
    d = decider.decide(s)
    assert task.status == "TIMED_OUT"
    assert d.status == "TIMED_OUT"  # no retries left: the workflow fails as timed out


def test_skipped_task_is_passed_over_when_its_predecessor_completes() -> None:
    s = state(definition("a", "b", "c"))
    skipped = TaskRecord(
        taskId="s",
        workflowInstanceId="wf-1",
        referenceTaskName="b",
        taskType="t_b",
        taskDefName="t_b",
        status="SKIPPED",
    )
    s.tasks.append(skipped)
    assert decider.decide(s).schedule == []  # "a" is not done yet; b is not passed early
    scheduled(s, "a").status = "COMPLETED"
    d = decider.decide(s)
    assert [t.referenceTaskName for t in d.schedule] == ["c"]


def test_input_template_fills_missing_and_null_inputs() -> None:
    wd = definition("a")
    wd.tasks[0].inputParameters = {"x": "${workflow.input.missing}"}
    defs = {"t_a": TaskDef(name="t_a", inputTemplate={"x": 5, "y": "z"})}
    d = decider.decide(state(wd, defs=defs))
    assert d.schedule[0].inputData == {"x": 5, "y": "z"}


def test_cpewf_task_id_resolves_to_the_new_tasks_id() -> None:
    wd = definition("a")
    wd.tasks[0].inputParameters = {"me": "${CPEWF_TASK_ID}"}
    [task] = decider.decide(state(wd)).schedule
    assert task.inputData == {"me": task.taskId}
