"""TaskDef, WorkflowDef and WorkflowTask in Conductor's JSON shape, with Conductor's defaults."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from app.schemas.common import Wire

RetryLogic = Literal["FIXED", "EXPONENTIAL_BACKOFF", "LINEAR_BACKOFF"]
TaskTimeoutPolicy = Literal["RETRY", "TIME_OUT_WF", "ALERT_ONLY"]
WorkflowTimeoutPolicy = Literal["TIME_OUT_WF", "ALERT_ONLY"]


class Auditable(Wire):
    ownerApp: str | None = None
    createTime: int | None = None
    updateTime: int | None = None
    createdBy: str | None = None
    updatedBy: str | None = None


class TaskDef(Auditable):
    name: str | None = None
    description: str | None = None
    retryCount: int = 3
    retryLogic: RetryLogic = "FIXED"
    retryDelaySeconds: int = 60
    backoffScaleFactor: int = 1
    maxRetryDelaySeconds: int = 0
    backoffJitterMs: int = 0
    timeoutSeconds: int = 0
    responseTimeoutSeconds: int = 3600
    pollTimeoutSeconds: int | None = None
    totalTimeoutSeconds: int = 0
    timeoutPolicy: TaskTimeoutPolicy = "TIME_OUT_WF"
    concurrentExecLimit: int | None = None
    rateLimitPerFrequency: int = 0
    rateLimitFrequencyInSeconds: int = 1
    inputKeys: list[str] = Field(default_factory=list)
    outputKeys: list[str] = Field(default_factory=list)
    inputTemplate: dict[str, Any] = Field(default_factory=dict)
    ownerEmail: str | None = None
    isolationGroupId: str | None = None
    executionNameSpace: str | None = None
    taskStatusListenerEnabled: bool = True
    baseType: str | None = None
    inputSchema: dict[str, Any] | None = None
    outputSchema: dict[str, Any] | None = None
    enforceSchema: bool | None = None


class SubWorkflowParams(Wire):
    name: str | None = None
    version: int | None = None
    taskToDomain: dict[str, str] | None = None
    # An inline definition; validated when the sub workflow starts, not here.
    workflowDefinition: Any = None
    idempotencyKey: str | None = None
    idempotencyStrategy: Literal["FAIL", "RETURN_EXISTING", "FAIL_ON_RUNNING"] | None = None
    priority: Any = None


class WorkflowTask(Wire):
    name: str | None = None
    taskReferenceName: str | None = None
    description: str | None = None
    type: str = "SIMPLE"
    inputParameters: dict[str, Any] = Field(default_factory=dict)
    optional: bool = False
    permissive: bool = False
    startDelay: int = 0
    retryCount: int | None = None
    taskDefinition: TaskDef | None = None
    asyncComplete: bool = False
    rateLimited: bool | None = None
    sink: str | None = None
    decisionCases: dict[str, list[WorkflowTask]] = Field(default_factory=dict)
    defaultCase: list[WorkflowTask] = Field(default_factory=list)
    caseValueParam: str | None = None
    caseExpression: str | None = None
    evaluatorType: str | None = None
    expression: str | None = None
    scriptExpression: str | None = None
    forkTasks: list[list[WorkflowTask]] = Field(default_factory=list)
    joinOn: list[str] = Field(default_factory=list)
    joinMode: Literal["SYNC", "ASYNC"] | None = None
    loopCondition: str | None = None
    loopOver: list[WorkflowTask] = Field(default_factory=list)
    items: str | None = None
    dynamicTaskNameParam: str | None = None
    dynamicForkTasksParam: str | None = None
    dynamicForkTasksInputParamName: str | None = None
    dynamicForkJoinTasksParam: str | None = None
    subWorkflowParam: SubWorkflowParams | None = None
    defaultExclusiveJoinTask: list[str] = Field(default_factory=list)
    onStateChange: dict[str, Any] | None = None
    joinStatus: str | None = None
    cacheConfig: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None

    def children(self) -> list[WorkflowTask]:
        """Every task nested directly inside this one (cases, forks, loop body)."""
        out: list[WorkflowTask] = []
        for case in self.decisionCases.values():
            out.extend(case)
        out.extend(self.defaultCase)
        for branch in self.forkTasks:
            out.extend(branch)
        out.extend(self.loopOver)
        return out


class WorkflowDef(Auditable):
    name: str | None = None
    description: str | None = None
    version: int = 1
    tasks: list[WorkflowTask] = Field(default_factory=list)
    inputParameters: list[str] = Field(default_factory=list)
    outputParameters: dict[str, Any] = Field(default_factory=dict)
    failureWorkflow: str | None = None
    failureWorkflowVersion: int | None = None
    schemaVersion: int = 2
    restartable: bool = True
    workflowStatusListenerEnabled: bool = False
    workflowStatusListenerSink: str | None = None
    ownerEmail: str | None = None
    timeoutPolicy: WorkflowTimeoutPolicy = "ALERT_ONLY"
    timeoutSeconds: int = 0
    variables: dict[str, Any] = Field(default_factory=dict)
    inputTemplate: dict[str, Any] = Field(default_factory=dict)
    rateLimitConfig: dict[str, Any] | None = None
    inputSchema: dict[str, Any] | None = None
    outputSchema: dict[str, Any] | None = None
    enforceSchema: bool = True
    metadata: dict[str, Any] | None = None
    cacheConfig: dict[str, Any] | None = None
    maskedFields: list[str] = Field(default_factory=list)

    def all_tasks(self) -> list[WorkflowTask]:
        """Every task in the definition, depth first, nested ones included."""
        out: list[WorkflowTask] = []
        stack = list(reversed(self.tasks))
        while stack:
            task = stack.pop()
            out.append(task)
            stack.extend(reversed(task.children()))
        return out


class WorkflowDefSummary(Wire):
    name: str
    version: int
    createTime: int | None = None
    updateTime: int | None = None


class BulkResponse(Wire):
    bulkErrorResults: dict[str, str] = Field(default_factory=dict)
    bulkSuccessfulResults: list[str] = Field(default_factory=list)
    message: str = "Bulk Request has been processed."
