"""/api/workflow and /api/workflow/bulk, as Conductor's WorkflowResource."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from app.api.deps import ExecutionsDep
from app.auth.permissions import Permission, Principal, require
from app.schemas.execution import RerunWorkflowRequest, SkipTaskRequest, StartWorkflowRequest
from app.schemas.metadata import BulkResponse

READ = [require(Permission.WORKFLOW_READ)]
EXECUTE = [require(Permission.WORKFLOW_EXECUTE)]
# The starter: a workflow runs as the application that started it (its secret access).
Caller = Annotated[Principal, require(Permission.WORKFLOW_EXECUTE)]

router = APIRouter(prefix="/api/workflow", tags=["workflow-resource"])
bulk_router = APIRouter(prefix="/api/workflow/bulk", tags=["workflow-bulk-resource"])
# The start endpoints: included before every other router, so starts match in a few route
# checks. No other route takes POST on /api/workflow or /api/workflow/<one segment>.
start_router = APIRouter(prefix="/api/workflow", tags=["workflow-resource"])

Ids = Annotated[list[str], Body()]


def _text(value: str) -> PlainTextResponse:
    return PlainTextResponse(value)


# -- start --------------------------------------------------------------------------------


@start_router.post(
    "",
    response_class=PlainTextResponse,
    summary="Start a workflow (StartWorkflowRequest)",
    dependencies=EXECUTE,
)
async def start_workflow(
    svc: ExecutionsDep, caller: Caller, body: Annotated[StartWorkflowRequest, Body()]
) -> Response:
    return _text(await svc.start(body, caller.id))


@router.post(
    "/execute/{name}/{version}",
    summary="Start a workflow and wait for it to finish (bounded)",
    dependencies=EXECUTE,
)
async def execute_workflow(
    svc: ExecutionsDep,
    caller: Caller,
    name: str,
    version: int,
    body: Annotated[StartWorkflowRequest, Body()],
    requestId: str | None = None,
    waitUntilTaskRef: str | None = None,
    waitForSeconds: Annotated[int, Query(ge=0, le=300)] = 10,
) -> Response:
    refs = [r.strip() for r in (waitUntilTaskRef or "").split(",") if r.strip()]
    return JSONResponse(
        await svc.execute(body, name, version, refs, waitForSeconds, requestId, caller.id)
    )


# -- reads (static paths before /{workflowId}) -------------------------------------------


@router.get(
    "/running/{name}",
    response_model=list[str],
    summary="Ids of running workflows",
    dependencies=READ,
)
async def running_workflows(
    svc: ExecutionsDep,
    name: str,
    version: int | None = 1,
    startTime: int = 0,
    endTime: int = 0,
) -> Response:
    return JSONResponse(await svc.running(name, version, startTime, endTime))


@router.get(
    "/{name}/correlated/{correlationId}",
    summary="Workflows with a correlation id",
    dependencies=READ,
)
async def correlated(
    svc: ExecutionsDep,
    name: str,
    correlationId: str,
    includeClosed: bool = False,
    includeTasks: bool = False,
) -> Response:
    return JSONResponse(await svc.correlated(name, correlationId, includeClosed, includeTasks))


@router.post(
    "/{name}/correlated", summary="Workflows for several correlation ids", dependencies=READ
)
async def correlated_many(
    svc: ExecutionsDep,
    name: str,
    body: Ids,
    includeClosed: bool = False,
    includeTasks: bool = False,
) -> Response:
    out: dict[str, Any] = {}
    for cid in body:
        out[cid] = await svc.correlated(name, cid, includeClosed, includeTasks)
    return JSONResponse(out)


@router.get("/{workflowId}", summary="Get a workflow execution", dependencies=READ)
async def get_workflow(svc: ExecutionsDep, workflowId: str, includeTasks: bool = True) -> Response:
    return JSONResponse(await svc.get_workflow(workflowId, includeTasks))


@router.get("/{workflowId}/status", summary="A workflow's status", dependencies=READ)
async def workflow_status(
    svc: ExecutionsDep,
    workflowId: str,
    includeOutput: bool = False,
    includeVariables: bool = False,
) -> Response:
    return JSONResponse(await svc.status(workflowId, includeOutput, includeVariables))


@router.get("/{workflowId}/tasks", summary="A page of a workflow's tasks", dependencies=READ)
async def workflow_tasks(
    svc: ExecutionsDep,
    workflowId: str,
    start: Annotated[int, Query(ge=0)] = 0,
    count: Annotated[int, Query(ge=0, le=5000)] = 15,
    status: Annotated[list[str] | None, Query()] = None,
) -> Response:
    return JSONResponse(await svc.workflow_tasks(workflowId, start, count, status or []))


# -- operations ---------------------------------------------------------------------------


@router.put(
    "/decide/{workflowId}", summary="Run the decider for a workflow now", dependencies=EXECUTE
)
async def decide(svc: ExecutionsDep, workflowId: str) -> Response:
    await svc.ex.decide(workflowId)
    return Response(status_code=200)


@router.put("/{workflowId}/pause", summary="Pause a workflow", dependencies=EXECUTE)
async def pause(svc: ExecutionsDep, workflowId: str) -> Response:
    await svc.ops.pause(workflowId)
    return Response(status_code=200)


@router.put("/{workflowId}/resume", summary="Resume a paused workflow", dependencies=EXECUTE)
async def resume(svc: ExecutionsDep, workflowId: str) -> Response:
    await svc.ops.resume(workflowId)
    return Response(status_code=200)


@router.put(
    "/{workflowId}/skiptask/{taskReferenceName}",
    summary="Skip a task not yet scheduled",
    dependencies=EXECUTE,
)
async def skip_task(
    svc: ExecutionsDep,
    workflowId: str,
    taskReferenceName: str,
    body: Annotated[SkipTaskRequest | None, Body()] = None,
) -> Response:
    request = body.model_dump(exclude_none=True) if body else {}
    await svc.ops.skip_task(workflowId, taskReferenceName, request)
    return Response(status_code=200)


@router.post(
    "/{workflowId}/rerun",
    response_class=PlainTextResponse,
    summary="Rerun a workflow",
    dependencies=EXECUTE,
)
async def rerun(
    svc: ExecutionsDep,
    caller: Caller,
    workflowId: str,
    body: Annotated[RerunWorkflowRequest, Body()],
) -> Response:
    request = body.model_dump(exclude_none=True)
    return _text(await svc.ops.rerun(workflowId, request, caller.id))


@router.post(
    "/{workflowId}/restart",
    status_code=204,
    summary="Restart a finished workflow",
    dependencies=EXECUTE,
)
async def restart(
    svc: ExecutionsDep, workflowId: str, useLatestDefinitions: bool = False
) -> Response:
    await svc.ops.restart(workflowId, useLatestDefinitions)
    return Response(status_code=204)


@router.post(
    "/{workflowId}/retry",
    status_code=204,
    summary="Retry the last failed tasks",
    dependencies=EXECUTE,
)
async def retry(
    svc: ExecutionsDep, workflowId: str, resumeSubworkflowTasks: bool = False
) -> Response:
    await svc.ops.retry(workflowId, resumeSubworkflowTasks)
    return Response(status_code=204)


@router.post(
    "/{workflowId}/resetcallbacks",
    status_code=204,
    summary="Reset callback delays",
    dependencies=EXECUTE,
)
async def reset_callbacks(svc: ExecutionsDep, workflowId: str) -> Response:
    await svc.ops.reset_callbacks(workflowId)
    return Response(status_code=204)


@router.delete("/{workflowId}", summary="Terminate a workflow", dependencies=EXECUTE)
async def terminate(svc: ExecutionsDep, workflowId: str, reason: str | None = None) -> Response:
    await svc.ops.terminate(workflowId, reason)
    return Response(status_code=200)


@router.delete(
    "/{workflowId}/remove", summary="Remove a workflow's execution data", dependencies=EXECUTE
)
async def remove(svc: ExecutionsDep, workflowId: str, archiveWorkflow: bool = True) -> Response:
    await svc.ops.remove(workflowId)
    return Response(status_code=200)


@router.delete(
    "/{workflowId}/terminate-remove",
    summary="Terminate, then remove a workflow",
    dependencies=EXECUTE,
)
async def terminate_remove(
    svc: ExecutionsDep, workflowId: str, reason: str | None = None, archiveWorkflow: bool = True
) -> Response:
    await svc.ops.terminate_remove(workflowId, reason)
    return Response(status_code=200)


# -- bulk -----------------------------------------------------------------------------------


def _bulk(result: BulkResponse) -> JSONResponse:
    return JSONResponse(result.to_json())


@bulk_router.put(
    "/pause", response_model=BulkResponse, summary="Pause workflows", dependencies=EXECUTE
)
async def bulk_pause(svc: ExecutionsDep, body: Ids) -> Response:
    return _bulk(await svc.bulk(body, svc.ops.pause))


@bulk_router.put(
    "/resume", response_model=BulkResponse, summary="Resume workflows", dependencies=EXECUTE
)
async def bulk_resume(svc: ExecutionsDep, body: Ids) -> Response:
    return _bulk(await svc.bulk(body, svc.ops.resume))


@bulk_router.post(
    "/restart", response_model=BulkResponse, summary="Restart workflows", dependencies=EXECUTE
)
async def bulk_restart(
    svc: ExecutionsDep, body: Ids, useLatestDefinitions: bool = False
) -> Response:
    return _bulk(await svc.bulk(body, lambda i: svc.ops.restart(i, useLatestDefinitions)))


@bulk_router.post(
    "/retry", response_model=BulkResponse, summary="Retry workflows", dependencies=EXECUTE
)
async def bulk_retry(svc: ExecutionsDep, body: Ids) -> Response:
    return _bulk(await svc.bulk(body, svc.ops.retry))


@bulk_router.post(
    "/terminate", response_model=BulkResponse, summary="Terminate workflows", dependencies=EXECUTE
)
async def bulk_terminate(svc: ExecutionsDep, body: Ids, reason: str | None = None) -> Response:
    return _bulk(await svc.bulk(body, lambda i: svc.ops.terminate(i, reason)))


@bulk_router.delete(
    "/remove", response_model=BulkResponse, summary="Remove workflows", dependencies=EXECUTE
)
async def bulk_remove(svc: ExecutionsDep, body: Ids, archiveWorkflow: bool = True) -> Response:
    return _bulk(await svc.bulk(body, svc.ops.remove))


@bulk_router.delete(
    "/terminate-remove",
    response_model=BulkResponse,
    summary="Terminate and remove workflows",
    dependencies=EXECUTE,
)
async def bulk_terminate_remove(
    svc: ExecutionsDep, body: Ids, reason: str | None = None, archiveWorkflow: bool = True
) -> Response:
    return _bulk(await svc.bulk(body, lambda i: svc.ops.terminate_remove(i, reason)))


@bulk_router.post("/search", summary="Get several workflows by id", dependencies=READ)
async def bulk_search(svc: ExecutionsDep, body: Ids, includeTasks: bool = True) -> Response:
    found: list[Any] = []

    async def get(workflow_id: str) -> None:
        found.append(await svc.get_workflow(workflow_id, includeTasks))

    result = await svc.bulk(body, get)
    return JSONResponse(
        {
            "bulkErrorResults": result.bulkErrorResults,
            "bulkSuccessfulResults": found,
            "message": result.message,
        }
    )


# -- start by name ------------------------------------------------------------------------


@start_router.post(
    "/{name}",
    response_class=PlainTextResponse,
    summary="Start a workflow by name",
    dependencies=EXECUTE,
)
async def start_workflow_by_name(
    svc: ExecutionsDep,
    caller: Caller,
    name: str,
    body: Annotated[dict[str, Any], Body()],
    version: int | None = None,
    correlationId: str | None = None,
    priority: Annotated[int, Query(ge=0, le=99)] = 0,
) -> Response:
    return _text(await svc.start_by_name(name, version, correlationId, priority, body, caller.id))
