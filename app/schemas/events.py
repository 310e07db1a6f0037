"""Conductor's EventHandler (`model/events/EventHandler.java`) in its JSON shape.

`action` and `evaluatorType` are plain strings here: the service checks them, so an
unsupported value is a 400 with validationErrors naming the field, not a parse error.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from app.schemas.common import Wire


class StartWorkflowAction(Wire):
    name: str | None = None
    version: int | None = None
    correlationId: str | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    inputMessage: Any = None
    taskToDomain: dict[str, str] | None = None


class TaskDetails(Wire):
    workflowId: str | None = None
    taskRefName: str | None = None
    output: dict[str, Any] = Field(default_factory=dict)
    outputMessage: Any = None
    taskId: str | None = None
    reasonForIncompletion: str | None = None


class EventAction(Wire):
    action: str | None = None
    start_workflow: StartWorkflowAction | None = None
    complete_task: TaskDetails | None = None
    fail_task: TaskDetails | None = None
    expandInlineJSON: bool = False


class EventHandler(Wire):
    name: str | None = None
    event: str | None = None
    condition: str | None = None
    evaluatorType: str | None = None
    # Conductor's own default is false (a primitive boolean); Baton registers handlers
    # active unless told otherwise.
    active: bool = True
    actions: list[EventAction] = Field(default_factory=list)
