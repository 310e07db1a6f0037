"""/api/scheduler: workflow schedules, as Orkes' SchedulerResource and SchedulerBulkResource.

Reading needs SCHEDULE_READ (USER and up); changing needs SCHEDULE_WRITE (WORKFLOW_MANAGER,
ADMIN). Saving a schedule and running one now also need WORKFLOW_EXECUTE, as Orkes asks of
a schedule's creator. Pause and resume answer both GET (Orkes, Java, JS clients) and PUT (OSS,
Python client).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response
from fastapi.responses import JSONResponse

from app.api.deps import SchedulerDep
from app.auth.permissions import Permission, Principal, require
from app.schemas.scheduler import (
    BulkResult,
    ExecutionSearchResult,
    SaveScheduleRequest,
    ScheduleExecution,
    ScheduleSearchResult,
    TagObject,
    WorkflowSchedule,
)

router = APIRouter(prefix="/api/scheduler", tags=["scheduler-resource"])

READ = [require(Permission.SCHEDULE_READ)]
WRITE = [require(Permission.SCHEDULE_WRITE)]
Writer = Annotated[Principal, require(Permission.SCHEDULE_WRITE)]
# Saving and running now start workflows as someone: that someone may start workflows.
Starter = Annotated[Principal, require(Permission.WORKFLOW_EXECUTE)]

SORT_DOC = "`field` or `field:ASC|DESC`, repeated or joined by `|`."


def _ok() -> Response:
    return Response(status_code=200)


# -- schedules (static paths before /schedules/{name}) -----------------------------------


@router.post(
    "/schedules",
    response_model=WorkflowSchedule,
    summary="Create or update a schedule (by name)",
    dependencies=WRITE,
)
async def save_schedule(
    scheduler: SchedulerDep, caller: Starter, body: Annotated[SaveScheduleRequest, Body()]
) -> JSONResponse:
    return JSONResponse(await scheduler.save(body, caller.id))


@router.get(
    "/schedules",
    response_model=list[WorkflowSchedule],
    summary="All schedules, or those of one workflow",
    dependencies=READ,
)
async def list_schedules(scheduler: SchedulerDep, workflowName: str | None = None) -> JSONResponse:
    return JSONResponse(await scheduler.list_schedules(workflowName))


@router.get(
    "/schedules/search",
    response_model=ScheduleSearchResult,
    summary="Search schedules (name is a substring match; freeText matches name or workflow)",
    dependencies=READ,
)
async def search_schedules(
    scheduler: SchedulerDep,
    start: Annotated[int, Query(ge=0)] = 0,
    size: Annotated[int, Query(ge=0, description="At most 1000.")] = 100,
    sort: Annotated[list[str] | None, Query(description=SORT_DOC)] = None,
    workflowName: str | None = None,
    name: str | None = None,
    scheduleName: Annotated[str | None, Query(description="OSS spelling of `name`.")] = None,
    paused: bool | None = None,
    freeText: str = "*",
) -> JSONResponse:
    return JSONResponse(
        await scheduler.search(
            workflow_name=workflowName,
            name=name or scheduleName,
            paused=paused,
            free_text=freeText,
            start=start,
            size=size,
            sort=sort or [],
        )
    )


@router.get(
    "/schedules/tags",
    response_model=list[WorkflowSchedule],
    summary="Schedules carrying any of the given tags",
    dependencies=READ,
)
async def schedules_by_tag(
    scheduler: SchedulerDep,
    tag: Annotated[list[str], Query(description="`key:value`, repeatable.")],
) -> JSONResponse:
    return JSONResponse(await scheduler.by_tags(tag))


@router.get(
    "/schedules/{name}",
    response_model=WorkflowSchedule,
    summary="Get a schedule (404 when missing)",
    dependencies=READ,
)
async def get_schedule(scheduler: SchedulerDep, name: str) -> JSONResponse:
    return JSONResponse(await scheduler.get(name))


@router.delete(
    "/schedules/{name}",
    summary="Delete a schedule and its execution records (200 when missing too)",
    dependencies=WRITE,
)
async def delete_schedule(scheduler: SchedulerDep, name: str) -> Response:
    await scheduler.delete(name)
    return _ok()


PAUSE = "Pause a schedule; slots missed while paused never run"
RESUME = "Resume a paused schedule from now (404 when missing or not paused)"


# One route per verb: each gets its own operation id in the API description.
@router.get("/schedules/{name}/pause", summary=PAUSE, dependencies=WRITE)
@router.put("/schedules/{name}/pause", summary=PAUSE, dependencies=WRITE)
async def pause_schedule(
    scheduler: SchedulerDep, caller: Writer, name: str, reason: str | None = None
) -> Response:
    await scheduler.pause(name, reason, caller.id)
    return _ok()


@router.get("/schedules/{name}/resume", summary=RESUME, dependencies=WRITE)
@router.put("/schedules/{name}/resume", summary=RESUME, dependencies=WRITE)
async def resume_schedule(scheduler: SchedulerDep, caller: Writer, name: str) -> Response:
    await scheduler.resume(name, caller.id)
    return _ok()


@router.post(
    "/schedules/{name}/run",
    response_model=ScheduleExecution,
    summary="Start the schedule's workflow now, as the caller (Baton addition)",
    dependencies=WRITE,
)
async def run_schedule_now(scheduler: SchedulerDep, caller: Starter, name: str) -> JSONResponse:
    return JSONResponse(await scheduler.run_now(name, caller.id))


@router.get(
    "/schedules/{name}/tags",
    response_model=list[TagObject],
    summary="A schedule's tags",
    dependencies=READ,
)
async def get_tags(scheduler: SchedulerDep, name: str) -> JSONResponse:
    return JSONResponse(await scheduler.get_tags(name))


@router.put("/schedules/{name}/tags", summary="Add tags (same key: new value)", dependencies=WRITE)
async def put_tags(
    scheduler: SchedulerDep, name: str, body: Annotated[list[TagObject], Body()]
) -> Response:
    await scheduler.put_tags(name, body)
    return _ok()


@router.delete("/schedules/{name}/tags", summary="Remove tags", dependencies=WRITE)
async def delete_tags(
    scheduler: SchedulerDep, name: str, body: Annotated[list[TagObject], Body()]
) -> Response:
    await scheduler.delete_tags(name, body)
    return _ok()


# -- bulk -------------------------------------------------------------------------------


@router.put("/bulk/pause", response_model=BulkResult, summary="Pause schedules", dependencies=WRITE)
async def bulk_pause(
    scheduler: SchedulerDep, caller: Writer, body: Annotated[list[str], Body()]
) -> JSONResponse:
    return JSONResponse(await scheduler.bulk(body, True, caller.id))


@router.put(
    "/bulk/resume", response_model=BulkResult, summary="Resume schedules", dependencies=WRITE
)
async def bulk_resume(
    scheduler: SchedulerDep, caller: Writer, body: Annotated[list[str], Body()]
) -> JSONResponse:
    return JSONResponse(await scheduler.bulk(body, False, caller.id))


# -- preview and history ----------------------------------------------------------------


@router.get(
    "/nextFewSchedules",
    response_model=list[int],
    summary="The next slots of a cron expression (epoch ms)",
    dependencies=READ,
)
async def next_few_schedules(
    scheduler: SchedulerDep,
    cronExpression: str,
    scheduleStartTime: int | None = None,
    scheduleEndTime: int | None = None,
    limit: Annotated[int | None, Query(ge=1, description="Default 3, at most 5.")] = None,
    zoneId: Annotated[str | None, Query(description="IANA zone; UTC by default.")] = None,
) -> JSONResponse:
    return JSONResponse(
        scheduler.next_few(cronExpression, scheduleStartTime, scheduleEndTime, limit, zoneId)
    )


@router.get(
    "/search/executions",
    response_model=ExecutionSearchResult,
    summary="Search execution records (OSS/Orkes query grammar; `*` or empty for all)",
    dependencies=READ,
)
async def search_executions(
    scheduler: SchedulerDep,
    query: Annotated[
        str | None,
        Query(
            description="Clauses joined by ` AND `: `scheduleName IN (a,b)`, "
            "`state IN (POLLED,EXECUTED,FAILED)`, `scheduledTime>ms`, `scheduledTime<ms`, "
            "`workflowName=x`, `executionId=y`; any other clause is a schedule name."
        ),
    ] = None,
    freeText: str = "*",
    start: Annotated[int, Query(ge=0)] = 0,
    size: Annotated[int, Query(ge=0, description="At most 1000.")] = 100,
    sort: Annotated[list[str] | None, Query(description=SORT_DOC)] = None,
) -> JSONResponse:
    return JSONResponse(await scheduler.search_executions(query, freeText, start, size, sort or []))


# -- this instance ----------------------------------------------------------------------


@router.get(
    "/admin/pause",
    summary="Stop firing schedules in this server process (debugging; others go on)",
    dependencies=WRITE,
)
async def pause_instance(scheduler: SchedulerDep) -> JSONResponse:
    scheduler.pause_instance()
    return JSONResponse({"status": "done"})


@router.get(
    "/admin/resume",
    summary="Fire schedules in this server process again",
    dependencies=WRITE,
)
async def resume_instance(scheduler: SchedulerDep) -> JSONResponse:
    scheduler.resume_instance()
    return JSONResponse({"status": "done"})


@router.get(
    "/admin/requeue",
    summary="OSS archival requeue; Baton writes records directly, so there is none to requeue",
    dependencies=WRITE,
)
async def requeue_records() -> JSONResponse:
    return JSONResponse({"recordIds.size": 0, "sampleIds": []})
