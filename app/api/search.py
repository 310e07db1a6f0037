"""GET /api/workflow/search[-v2] and /api/tasks/search[-v2], as Conductor's search endpoints.

These routers must be included before the ones with `/{workflowId}` / `/{taskId}` paths,
which would otherwise take `search` for an id.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from app.api.deps import ServicesDep
from app.auth.permissions import Permission, require
from app.services.search import SearchParams, SearchService

workflow_search_router = APIRouter(prefix="/api/workflow", tags=["workflow-resource"])
task_search_router = APIRouter(prefix="/api/tasks", tags=["task-resource"])

# Searching reads executions: USER and up.
READ = [require(Permission.WORKFLOW_READ)]

QUERY_DOC = (
    "SQL-like filter, clauses joined by AND: `field = 'v'`, `!=`, `>`, `>=`, `<`, `<=`, "
    "`field IN (A, B)`; times in epoch ms. E.g. `workflowType = 'flow' AND status IN "
    "(RUNNING, FAILED)`."
)
FREE_TEXT_DOC = "`*` for all, else a case-sensitive substring of the stored JSON document."
SORT_DOC = "`field:ASC|DESC`, several joined by `|` or repeated."


async def get_search(services: ServicesDep) -> SearchService:
    return SearchService(services.db, services.executor.masker)


async def search_params(
    start: Annotated[int, Query()] = 0,
    size: Annotated[int, Query(description="At most 5000.")] = 100,
    sort: Annotated[list[str] | None, Query(description=SORT_DOC)] = None,
    freeText: Annotated[str, Query(description=FREE_TEXT_DOC)] = "*",
    query: Annotated[str, Query(description=QUERY_DOC)] = "",
) -> SearchParams:
    return SearchParams(start, size, tuple(sort or ()), freeText, query)


SearchDep = Annotated[SearchService, Depends(get_search)]
ParamsDep = Annotated[SearchParams, Depends(search_params)]


@workflow_search_router.get(
    "/search", summary="Search workflows (WorkflowSummary results)", dependencies=READ
)
async def search_workflows(search: SearchDep, params: ParamsDep) -> JSONResponse:
    return JSONResponse(await search.workflows(params, full=False))


@workflow_search_router.get(
    "/search-v2", summary="Search workflows (Workflow results, without tasks)", dependencies=READ
)
async def search_workflows_v2(search: SearchDep, params: ParamsDep) -> JSONResponse:
    return JSONResponse(await search.workflows(params, full=True))


@task_search_router.get("/search", summary="Search tasks (TaskSummary results)", dependencies=READ)
async def search_tasks(search: SearchDep, params: ParamsDep) -> JSONResponse:
    return JSONResponse(await search.tasks(params, full=False))


@task_search_router.get("/search-v2", summary="Search tasks (Task results)", dependencies=READ)
async def search_tasks_v2(search: SearchDep, params: ParamsDep) -> JSONResponse:
    return JSONResponse(await search.tasks(params, full=True))
