"""Request bodies of the workflow and task APIs, in Conductor's JSON shape."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from app.schemas.common import Wire
from app.schemas.metadata import WorkflowDef

IdempotencyStrategy = Literal["FAIL", "RETURN_EXISTING", "FAIL_ON_RUNNING"]
ResultStatus = Literal[
    "IN_PROGRESS", "FAILED", "FAILED_WITH_TERMINAL_ERROR", "COMPLETED", "CANCELED"
]


class StartWorkflowRequest(Wire):
    name: str | None = None
    version: int | None = None
    correlationId: str | None = None
    input: dict[str, Any] | None = Field(default_factory=dict)
    taskToDomain: dict[str, str] = Field(default_factory=dict)
    workflowDef: WorkflowDef | None = None
    priority: int = 0
    createdBy: str | None = None
    idempotencyKey: str | None = None
    idempotencyStrategy: IdempotencyStrategy | None = None
    externalInputPayloadStoragePath: str | None = None


class TaskExecLog(Wire):
    log: str | None = None
    taskId: str | None = None
    createdTime: int | None = None


class TaskResult(Wire):
    workflowInstanceId: str | None = None
    taskId: str | None = None
    status: ResultStatus | None = None
    reasonForIncompletion: str | None = None
    callbackAfterSeconds: int = Field(default=0, ge=0)
    workerId: str | None = None
    outputData: dict[str, Any] = Field(default_factory=dict)
    logs: list[TaskExecLog] = Field(default_factory=list)
    extendLease: bool = False


class SkipTaskRequest(Wire):
    taskInput: dict[str, Any] | None = None
    taskOutput: dict[str, Any] | None = None


class RerunWorkflowRequest(Wire):
    reRunFromWorkflowId: str | None = None
    workflowInput: dict[str, Any] | None = None
    reRunFromTaskId: str | None = None
    taskInput: dict[str, Any] | None = None
    correlationId: str | None = None
