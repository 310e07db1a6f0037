"""/api/metadata: task and workflow definitions, as Conductor's MetadataResource."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response
from fastapi.responses import JSONResponse

from app.api.deps import MetadataDep
from app.auth.permissions import Permission, require
from app.schemas.metadata import BulkResponse, TaskDef, WorkflowDef, WorkflowDefSummary

router = APIRouter(prefix="/api/metadata", tags=["metadata-resource"])

# Reading definitions: USER and up; task definitions also for WORKER. Writing: METADATA_MANAGER.
READ_DEFS = [require(Permission.METADATA_READ)]
READ_TASK_DEFS = [require(Permission.TASK_DEF_READ)]
WRITE_DEFS = [require(Permission.METADATA_WRITE)]


def _ok() -> Response:
    return Response(status_code=200)


def _json(data: Any) -> JSONResponse:
    return JSONResponse(data)


# -- task definitions -----------------------------------------------------------------


@router.post("/taskdefs", summary="Create or update task definitions", dependencies=WRITE_DEFS)
async def register_task_defs(
    metadata: MetadataDep, body: Annotated[list[TaskDef], Body()]
) -> Response:
    await metadata.register_task_defs(body)
    return _ok()


@router.put("/taskdefs", summary="Update an existing task definition", dependencies=WRITE_DEFS)
async def update_task_def(metadata: MetadataDep, body: Annotated[TaskDef, Body()]) -> Response:
    await metadata.update_task_def(body)
    return _ok()


@router.get(
    "/taskdefs",
    response_model=list[TaskDef],
    summary="Get all task definitions",
    dependencies=READ_TASK_DEFS,
)
async def list_task_defs(metadata: MetadataDep) -> Response:
    return _json(await metadata.list_task_defs())


@router.get(
    "/taskdefs/{tasktype}",
    response_model=TaskDef,
    summary="Get a task definition",
    dependencies=READ_TASK_DEFS,
)
async def get_task_def(metadata: MetadataDep, tasktype: str) -> Response:
    return _json(await metadata.get_task_def(tasktype))


@router.delete("/taskdefs/{tasktype}", summary="Remove a task definition", dependencies=WRITE_DEFS)
async def delete_task_def(metadata: MetadataDep, tasktype: str) -> Response:
    await metadata.delete_task_def(tasktype)
    return _ok()


# -- workflow definitions -------------------------------------------------------------


@router.post("/workflow", summary="Create a workflow definition", dependencies=WRITE_DEFS)
async def create_workflow_def(
    metadata: MetadataDep,
    body: Annotated[WorkflowDef, Body()],
    overwrite: bool = False,
) -> Response:
    await metadata.create_workflow_def(body, overwrite)
    return _ok()


@router.post("/workflow/validate", summary="Validate a workflow definition", dependencies=READ_DEFS)
async def validate_workflow_def(
    metadata: MetadataDep, body: Annotated[WorkflowDef, Body()]
) -> Response:
    await metadata.validate_workflow_def(body)
    return _ok()


@router.put(
    "/workflow",
    response_model=BulkResponse,
    summary="Create or update workflow definitions",
    dependencies=WRITE_DEFS,
)
async def upsert_workflow_defs(
    metadata: MetadataDep, body: Annotated[list[WorkflowDef], Body()]
) -> Response:
    return _json((await metadata.upsert_workflow_defs(body)).to_json())


@router.get(
    "/workflow",
    response_model=list[WorkflowDef],
    summary="All workflow definitions",
    dependencies=READ_DEFS,
)
async def list_workflow_defs(metadata: MetadataDep) -> Response:
    return _json(await metadata.list_workflow_defs())


@router.get(
    "/workflow/latest-versions",
    response_model=list[WorkflowDef],
    summary="The latest version of every workflow definition",
    dependencies=READ_DEFS,
)
async def latest_workflow_defs(metadata: MetadataDep) -> Response:
    return _json(await metadata.list_latest_workflow_defs())


@router.get(
    "/workflow/names-and-versions",
    response_model=dict[str, list[WorkflowDefSummary]],
    summary="Every workflow name with its versions",
    dependencies=READ_DEFS,
)
async def names_and_versions(metadata: MetadataDep) -> Response:
    return _json(await metadata.workflow_names_and_versions())


@router.get(
    "/workflow/names",
    response_model=list[str],
    summary="Every workflow name",
    dependencies=READ_DEFS,
)
async def workflow_names(metadata: MetadataDep) -> Response:
    return _json(sorted(await metadata.workflow_names_and_versions()))


@router.get(
    "/workflow/{name}/versions",
    response_model=list[WorkflowDefSummary],
    summary="The versions of one workflow definition",
    dependencies=READ_DEFS,
)
async def workflow_versions(metadata: MetadataDep, name: str) -> Response:
    return _json(await metadata.workflow_versions(name))


@router.get(
    "/workflow/{name}",
    response_model=WorkflowDef,
    summary="Get a workflow definition",
    dependencies=READ_DEFS,
)
async def get_workflow_def(
    metadata: MetadataDep, name: str, version: Annotated[int | None, Query()] = None
) -> Response:
    return _json(await metadata.get_workflow_def(name, version))


@router.delete(
    "/workflow/{name}/{version}",
    summary="Remove a workflow definition version",
    dependencies=WRITE_DEFS,
)
async def delete_workflow_def(metadata: MetadataDep, name: str, version: int) -> Response:
    await metadata.delete_workflow_def(name, version)
    return _ok()
