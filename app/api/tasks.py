"""/api/tasks, as Conductor's TaskResource: polls, updates, logs, queues."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from app.api.deps import ExecutionsDep
from app.auth.permissions import Permission, require
from app.errors import BadRequest
from app.schemas.execution import TaskResult

READ = [require(Permission.WORKFLOW_READ)]
EXECUTE = [require(Permission.WORKFLOW_EXECUTE)]
WORK = [require(Permission.TASK_WORK)]

router = APIRouter(prefix="/api/tasks", tags=["task-resource"])
# The worker endpoints (poll, update): included before every other router, so the busiest
# requests match in a few route checks. No other route takes their method and path shape.
worker_router = APIRouter(prefix="/api/tasks", tags=["task-resource"])

STATUSES = {"IN_PROGRESS", "FAILED", "FAILED_WITH_TERMINAL_ERROR", "COMPLETED", "CANCELED"}


@worker_router.get(
    "/poll/batch/{tasktype}",
    summary="Batch poll for tasks of a type (long poll)",
    dependencies=WORK,
)
async def batch_poll(
    svc: ExecutionsDep,
    tasktype: str,
    workerid: str | None = None,
    domain: str | None = None,
    count: Annotated[int, Query(ge=1, le=1000)] = 1,
    timeout: Annotated[int, Query(ge=0)] = 100,  # noqa: ASYNC109 - Conductor's name
) -> Response:
    return JSONResponse(await svc.poll(tasktype, workerid, domain or None, count, timeout))


@worker_router.get("/poll/{tasktype}", summary="Poll for one task of a type", dependencies=WORK)
async def poll(
    svc: ExecutionsDep, tasktype: str, workerid: str | None = None, domain: str | None = None
) -> Response:
    tasks = await svc.poll(tasktype, workerid, domain or None, 1, 100)
    return JSONResponse(tasks[0]) if tasks else Response(status_code=204)


@worker_router.post(
    "", response_class=PlainTextResponse, summary="Update a task (TaskResult)", dependencies=WORK
)
async def update_task(svc: ExecutionsDep, body: Annotated[TaskResult, Body()]) -> Response:
    return PlainTextResponse(await svc.update(body))


@worker_router.post(
    "/update-v2", summary="Update a task and poll the next one of the same type", dependencies=WORK
)
async def update_task_v2(svc: ExecutionsDep, body: Annotated[TaskResult, Body()]) -> Response:
    task = await svc.update_v2(body)
    return JSONResponse(task) if task is not None else Response(status_code=204)


@router.get("/queue/sizes", summary="Queue sizes of task types (deprecated)", dependencies=READ)
async def queue_sizes(
    svc: ExecutionsDep, taskType: Annotated[list[str] | None, Query()] = None
) -> Response:
    return JSONResponse(await svc.queue_sizes(taskType or []))


@router.get("/queue/size", summary="Queue size of one task type", dependencies=READ)
async def queue_size(svc: ExecutionsDep, taskType: str, domain: str | None = None) -> Response:
    name = f"{domain}:{taskType}" if domain else taskType
    return JSONResponse((await svc.queue_sizes([name]))[name])


@router.get("/queue/all", summary="Every queue with its size", dependencies=READ)
async def queue_all(svc: ExecutionsDep) -> Response:
    return JSONResponse(await svc.queue_sizes(None))


@router.get("/queue/all/verbose", summary="Every queue with its size, by shard", dependencies=READ)
async def queue_all_verbose(svc: ExecutionsDep) -> Response:
    sizes = await svc.queue_sizes(None)
    return JSONResponse({q: {"a": {"size": n, "uacked": 0}} for q, n in sizes.items()})


@router.get("/queue/polldata", summary="Last poll of each worker of a task type", dependencies=READ)
async def poll_data(svc: ExecutionsDep, taskType: str) -> Response:
    return JSONResponse(await svc.poll_data(taskType))


@router.get("/queue/polldata/all", summary="Last poll of every worker", dependencies=READ)
async def poll_data_all(svc: ExecutionsDep) -> Response:
    return JSONResponse(await svc.poll_data(None))


@router.post(
    "/queue/requeue/{taskType}",
    response_class=PlainTextResponse,
    summary="Requeue pending tasks of a type",
    dependencies=EXECUTE,
)
async def requeue(svc: ExecutionsDep, taskType: str) -> Response:
    return PlainTextResponse(str(await svc.requeue(taskType)))


@router.post("/{taskId}/log", summary="Add a log line to a task", dependencies=WORK)
async def add_log(svc: ExecutionsDep, taskId: str, request: Request) -> Response:
    raw = (await request.body()).decode("utf-8", errors="replace")
    # Clients send either a bare string or a JSON string literal; store what they meant.
    text = raw
    if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
        try:
            decoded = json.loads(raw)
            text = decoded if isinstance(decoded, str) else raw
        except ValueError:
            text = raw
    await svc.add_log(taskId, text)
    return Response(status_code=200)


@router.get("/{taskId}/log", summary="A task's log lines", dependencies=READ)
async def get_logs(svc: ExecutionsDep, taskId: str) -> Response:
    logs = await svc.logs(taskId)
    return JSONResponse(logs) if logs else Response(status_code=204)


@router.post(
    "/{taskId}/ack",
    summary="Acknowledge a task (for 2.x clients; polls ack already)",
    dependencies=WORK,
)
async def ack(svc: ExecutionsDep, taskId: str, workerid: str | None = None) -> Response:
    await svc.get_task(taskId)
    return JSONResponse(True)


@router.get("/{taskId}", summary="Get a task", dependencies=READ)
async def get_task(svc: ExecutionsDep, taskId: str) -> Response:
    return JSONResponse(await svc.get_task(taskId))


@router.post(
    "/{workflowId}/{taskRefName}/{status}",
    response_class=PlainTextResponse,
    summary="Update a task by reference name",
    dependencies=WORK,
)
async def update_by_ref(
    svc: ExecutionsDep,
    workflowId: str,
    taskRefName: str,
    status: str,
    body: Annotated[dict[str, Any], Body()],
    workerid: str | None = None,
) -> Response:
    if status not in STATUSES:
        raise BadRequest(f"Invalid task status: {status}")
    return PlainTextResponse(
        await svc.update_by_ref(workflowId, taskRefName, status, body, workerid)
    )
