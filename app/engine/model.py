"""Execution state: workflows and tasks as the engine sees them, in Conductor's JSON shape.

Records are plain dataclasses; `to_json()` gives the API shape and the stored document,
`from_json()` reads it back. The store keeps a few fields in columns for indexing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, fields
from typing import Any

Json = dict[str, Any]

# -- statuses ---------------------------------------------------------------------------

WF_RUNNING = "RUNNING"
WF_COMPLETED = "COMPLETED"
WF_FAILED = "FAILED"
WF_TIMED_OUT = "TIMED_OUT"
WF_TERMINATED = "TERMINATED"
WF_PAUSED = "PAUSED"
WORKFLOW_STATUSES = frozenset(
    {WF_RUNNING, WF_COMPLETED, WF_FAILED, WF_TIMED_OUT, WF_TERMINATED, WF_PAUSED}
)
WF_TERMINAL = frozenset({WF_COMPLETED, WF_FAILED, WF_TIMED_OUT, WF_TERMINATED})

T_SCHEDULED = "SCHEDULED"
T_IN_PROGRESS = "IN_PROGRESS"
T_COMPLETED = "COMPLETED"
T_COMPLETED_WITH_ERRORS = "COMPLETED_WITH_ERRORS"
T_FAILED = "FAILED"
T_FAILED_WITH_TERMINAL_ERROR = "FAILED_WITH_TERMINAL_ERROR"
T_TIMED_OUT = "TIMED_OUT"
T_CANCELED = "CANCELED"
T_SKIPPED = "SKIPPED"
TASK_STATUSES = frozenset(
    {
        T_SCHEDULED,
        T_IN_PROGRESS,
        T_COMPLETED,
        T_COMPLETED_WITH_ERRORS,
        T_FAILED,
        T_FAILED_WITH_TERMINAL_ERROR,
        T_TIMED_OUT,
        T_CANCELED,
        T_SKIPPED,
    }
)
T_TERMINAL = frozenset(
    {
        T_COMPLETED,
        T_COMPLETED_WITH_ERRORS,
        T_FAILED,
        T_FAILED_WITH_TERMINAL_ERROR,
        T_TIMED_OUT,
        T_CANCELED,
        T_SKIPPED,
    }
)
T_SUCCESSFUL = frozenset(
    {T_SCHEDULED, T_IN_PROGRESS, T_COMPLETED, T_COMPLETED_WITH_ERRORS, T_SKIPPED}
)
T_RETRIABLE = TASK_STATUSES - {T_FAILED_WITH_TERMINAL_ERROR, T_CANCELED, T_SKIPPED}


def is_terminal(status: str) -> bool:
    return status in T_TERMINAL


def is_successful_terminal(status: str) -> bool:
    return status in T_TERMINAL and status in T_SUCCESSFUL


def new_id() -> str:
    return str(uuid.uuid4())


# -- records ----------------------------------------------------------------------------


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


@dataclass
class TaskRecord:
    taskId: str
    workflowInstanceId: str
    referenceTaskName: str
    taskType: str
    taskDefName: str
    status: str
    seq: int = 0
    inputData: Json = field(default_factory=dict)
    outputData: Json = field(default_factory=dict)
    workflowTask: Json = field(default_factory=dict)
    retryCount: int = 0
    iteration: int = 0
    pollCount: int = 0
    scheduledTime: int = 0
    startTime: int = 0
    endTime: int = 0
    updateTime: int = 0
    startDelayInSeconds: int = 0
    callbackAfterSeconds: int = 0
    responseTimeoutSeconds: int = 0
    retried: bool = False
    executed: bool = False
    retriedTaskId: str | None = None
    reasonForIncompletion: str | None = None
    workerId: str | None = None
    domain: str | None = None
    correlationId: str | None = None
    workflowType: str | None = None
    workflowPriority: int = 0
    subWorkflowId: str | None = None
    parentTaskId: str | None = None
    firstScheduledTime: int = 0
    # The TaskDef in force when the task was scheduled (Conductor embeds it too), so retries
    # and timeouts never depend on a later edit of the definition.
    taskDefinition: Json | None = None
    # Engine bookkeeping, not part of Conductor's Task JSON.
    timeoutAt: int | None = None

    @property
    def terminal(self) -> bool:
        return self.status in T_TERMINAL

    @property
    def base_ref(self) -> str:
        """The reference name without a DO_WHILE iteration suffix (`ref__2` -> `ref`)."""
        head, sep, tail = self.referenceTaskName.rpartition("__")
        return head if sep and tail.isdigit() else self.referenceTaskName

    def to_doc(self) -> Json:
        return {k: getattr(self, k) for k in _field_names(type(self))}

    @classmethod
    def from_doc(cls, doc: Json) -> TaskRecord:
        return cls(**{k: doc[k] for k in _field_names(cls) if k in doc})

    def to_json(self) -> Json:
        """Conductor's Task JSON: null properties omitted, maps kept as they are."""
        out = {k: v for k, v in self.to_doc().items() if v is not None and k != "timeoutAt"}
        out["callbackFromWorker"] = True
        out["queueWaitTime"] = (
            self.startTime - self.scheduledTime if self.startTime and self.scheduledTime else 0
        )
        if self.status == T_IN_PROGRESS or self.terminal:
            out["loopOverTask"] = self.iteration > 0
        return out


@dataclass
class WorkflowRecord:
    workflowId: str
    workflowName: str
    workflowVersion: int
    status: str
    input: Json = field(default_factory=dict)
    output: Json = field(default_factory=dict)
    variables: Json = field(default_factory=dict)
    correlationId: str | None = None
    priority: int = 0
    taskToDomain: dict[str, str] = field(default_factory=dict)
    createTime: int = 0
    updateTime: int = 0
    endTime: int = 0
    lastRetriedTime: int = 0
    reasonForIncompletion: str | None = None
    failedReferenceTaskNames: list[str] = field(default_factory=list)
    failedTaskNames: list[str] = field(default_factory=list)
    parentWorkflowId: str | None = None
    parentWorkflowTaskId: str | None = None
    reRunFromWorkflowId: str | None = None
    createdBy: str | None = None
    idempotencyKey: str | None = None
    event: str | None = None
    # Engine bookkeeping, not part of Conductor's Workflow JSON.
    timeoutAt: int | None = None

    @property
    def terminal(self) -> bool:
        return self.status in WF_TERMINAL

    def to_doc(self) -> Json:
        return {k: getattr(self, k) for k in _field_names(type(self))}

    @classmethod
    def from_doc(cls, doc: Json) -> WorkflowRecord:
        return cls(**{k: doc[k] for k in _field_names(cls) if k in doc})

    def to_json(self) -> Json:
        out = {k: v for k, v in self.to_doc().items() if v is not None and k != "timeoutAt"}
        out["startTime"] = self.createTime
        if not self.endTime:
            out.pop("endTime", None)
        return out
