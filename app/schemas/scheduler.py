"""Schedules and their execution records in Orkes' JSON shape (WorkflowSchedule,
WorkflowScheduleExecutionModel), plus Baton's additions: overlapPolicy, lastRunTime and
lastRunStatus."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from app.schemas.common import Wire

OverlapPolicy = Literal["ALLOW", "SKIP", "BUFFER_ONE"]
ExecutionState = Literal["POLLED", "EXECUTED", "FAILED"]
IdempotencyStrategy = Literal["FAIL", "RETURN_EXISTING", "FAIL_ON_RUNNING"]


def _blank_to_none(value: object) -> object:
    # Orkes' docs send `"version": ""` and `"priority": ""`: an empty string means unset.
    if isinstance(value, str) and not value.strip():
        return None
    return value


class TagObject(Wire):
    key: str | None = None
    value: str | None = None
    # The Python SDK always sends "METADATA"; accepted and ignored.
    type: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value}


class ScheduleStartRequest(Wire):
    """The StartWorkflowRequest a schedule starts on every slot."""

    name: str | None = None
    version: int | None = None
    input: dict[str, Any] | None = Field(default_factory=dict)
    correlationId: str | None = None
    idempotencyKey: str | None = None
    idempotencyStrategy: IdempotencyStrategy | None = None
    taskToDomain: dict[str, str] | None = Field(default_factory=dict)
    priority: int | None = 0

    @field_validator("version", "priority", "idempotencyStrategy", mode="before")
    @classmethod
    def _blank(cls, value: object) -> object:
        return _blank_to_none(value)


class CronSchedule(Wire):
    cronExpression: str | None = None
    zoneId: str | None = None


class SaveScheduleRequest(Wire):
    """POST /api/scheduler/schedules. Server-set fields (createTime, createdBy, nextRunTime,
    ...) may be sent back from a GET and are ignored."""

    name: str | None = None
    description: str | None = None
    cronExpression: str | None = None
    zoneId: str | None = None
    paused: bool | None = False
    runCatchupScheduleInstances: bool | None = False
    scheduleStartTime: int | None = None
    scheduleEndTime: int | None = None
    startWorkflowRequest: ScheduleStartRequest | None = None
    tags: list[TagObject] | None = None
    cronSchedules: list[CronSchedule] | None = None
    overlapPolicy: OverlapPolicy | None = None

    @field_validator("scheduleStartTime", "scheduleEndTime", mode="before")
    @classmethod
    def _blank(cls, value: object) -> object:
        return _blank_to_none(value)


class WorkflowSchedule(Wire):
    """A schedule as the API returns it (documents the response; routers send plain JSON)."""

    name: str
    description: str | None = None
    cronExpression: str | None = None
    zoneId: str = "UTC"
    paused: bool = False
    pausedReason: str | None = None
    runCatchupScheduleInstances: bool = False
    scheduleStartTime: int | None = None
    scheduleEndTime: int | None = None
    startWorkflowRequest: ScheduleStartRequest
    createTime: int
    updatedTime: int
    createdBy: str | None = None
    updatedBy: str | None = None
    tags: list[TagObject] = Field(default_factory=list)
    orgId: str = "0000"
    queueMsgId: str
    nextRunTime: int | None = None
    cronSchedules: list[CronSchedule] | None = None
    overlapPolicy: OverlapPolicy = "ALLOW"
    lastRunTime: int | None = None
    lastRunStatus: str | None = None


class ScheduleExecution(Wire):
    executionId: str
    scheduleName: str
    scheduledTime: int
    executionTime: int
    workflowName: str
    workflowId: str | None = None
    reason: str | None = None
    stackTrace: str | None = None
    startWorkflowRequest: dict[str, Any]
    state: ExecutionState
    zoneId: str
    orgId: str = "0000"


class ScheduleSearchResult(Wire):
    totalHits: int
    results: list[WorkflowSchedule]


class ExecutionSearchResult(Wire):
    totalHits: int
    results: list[ScheduleExecution]


class BulkResult(Wire):
    bulkSuccessfulResults: list[str] = Field(default_factory=list)
    bulkErrorResults: dict[str, str] = Field(default_factory=dict)
