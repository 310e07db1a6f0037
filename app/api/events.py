"""/api/event (Conductor's EventResource), the default event queue updates of /api/queue
(QueueAdminResource), and the workflow signal endpoints of /api/tasks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from app.api.deps import ExecutionsDep, services_of
from app.auth.permissions import Permission, require
from app.schemas.events import EventHandler
from app.schemas.execution import TaskResult
from app.services.events import EventService, check_queue_status

READ = [require(Permission.METADATA_READ)]
WRITE = [require(Permission.METADATA_WRITE)]
WORK = [require(Permission.TASK_WORK)]

router = APIRouter(prefix="/api/event", tags=["event-resource"])
queue_router = APIRouter(prefix="/api/queue", tags=["queue-admin-resource"])
# Included before the /api/tasks router (its routes have more segments, but keep it clear).
signal_router = APIRouter(prefix="/api/tasks", tags=["task-resource"])


async def get_events(request: Request) -> EventService:
    return EventService(services_of(request).executor)


EventsDep = Annotated[EventService, Depends(get_events)]
Output = Annotated[dict[str, Any], Body()]


# -- event handlers -------------------------------------------------------------------------


@router.post("", summary="Add a new event handler", dependencies=WRITE)
async def add_event_handler(svc: EventsDep, body: Annotated[EventHandler, Body()]) -> Response:
    await svc.add_handler(body)
    return Response(status_code=200)


@router.put("", summary="Update an existing event handler", dependencies=WRITE)
async def update_event_handler(svc: EventsDep, body: Annotated[EventHandler, Body()]) -> Response:
    await svc.update_handler(body)
    return Response(status_code=200)


@router.get("", summary="All event handlers", dependencies=READ)
async def get_event_handlers(svc: EventsDep) -> Response:
    return JSONResponse(await svc.list_handlers())


@router.get("/{event}", summary="Event handlers for an event", dependencies=READ)
async def get_event_handlers_for_event(
    svc: EventsDep, event: str, activeOnly: bool = True
) -> Response:
    return JSONResponse(await svc.handlers_for_event(event, activeOnly))


@router.delete("/{name}", summary="Remove an event handler", dependencies=WRITE)
async def remove_event_handler(svc: EventsDep, name: str) -> Response:
    await svc.delete_handler(name)
    return Response(status_code=200)


# -- default event queue updates ------------------------------------------------------------


@queue_router.post(
    "/update/{workflowId}/{taskRefName}/{status}",
    summary="Update a pending task by reference name, as a queue message would",
    dependencies=WORK,
)
async def queue_update_by_ref(
    svc: ExecutionsDep, workflowId: str, taskRefName: str, status: str, body: Output
) -> Response:
    await svc.update_by_ref(workflowId, taskRefName, check_queue_status(status), body, None)
    return Response(status_code=200)


@queue_router.post(
    "/update/{workflowId}/task/{taskId}/{status}",
    summary="Update a task by id, as a queue message would",
    dependencies=WORK,
)
async def queue_update_by_id(
    svc: ExecutionsDep, workflowId: str, taskId: str, status: str, body: Output
) -> Response:
    result = {
        "workflowInstanceId": workflowId,
        "taskId": taskId,
        "status": check_queue_status(status),
        "outputData": body,
    }
    await svc.update(TaskResult.model_validate(result))
    return Response(status_code=200)


# -- signals ----------------------------------------------------------------------------------


@signal_router.post(
    "/{workflowId}/{status}/signal",
    summary="Update the WAIT task a workflow (or its running sub-workflow) is blocked on",
    dependencies=WORK,
)
async def signal(svc: EventsDep, workflowId: str, status: str, body: Output) -> Response:
    await svc.signal(workflowId, status, body)
    return Response(status_code=200)


@signal_router.post(
    "/{workflowId}/{status}/signal/sync",
    summary="Signal, then answer with the workflow's next blocking state",
    dependencies=WORK,
)
async def signal_sync(
    svc: EventsDep,
    workflowId: str,
    status: str,
    body: Output,
    returnStrategy: str = "TARGET_WORKFLOW",
    timeoutMillis: Annotated[int, Query(ge=0, le=300_000)] = 5000,
) -> Response:
    return JSONResponse(
        await svc.signal_sync(workflowId, status, body, returnStrategy, timeoutMillis)
    )
