"""/api/applications: applications, their roles and access keys (Orkes' ApplicationResource).
Every endpoint needs APPLICATION_MANAGE (role ADMIN)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response
from fastapi.responses import JSONResponse

from app.api.deps import AuthDep
from app.auth.permissions import Permission, Principal, require
from app.schemas.auth import AccessKey, Application, ApplicationRequest, CreatedAccessKey, Message

router = APIRouter(
    prefix="/api/applications",
    tags=["application-resource"],
    dependencies=[require(Permission.APPLICATION_MANAGE)],
)

# The same requirement as the router's: FastAPI runs it once and hands over the caller.
Caller = Annotated[Principal, require(Permission.APPLICATION_MANAGE)]


def _json(data: Any) -> JSONResponse:
    return JSONResponse(data)


@router.post("", response_model=Application, summary="Create an application")
async def create_application(
    auth: AuthDep, caller: Caller, body: Annotated[ApplicationRequest, Body()]
) -> Response:
    return _json(await auth.create_application(body.name, caller))


@router.get("", response_model=list[Application], summary="All applications")
async def list_applications(auth: AuthDep) -> Response:
    return _json(await auth.list_applications())


@router.get(
    "/key/{accessKeyId}",
    response_model=Application,
    summary="The application an access key belongs to",
)
async def application_by_key(auth: AuthDep, accessKeyId: str) -> Response:
    return _json(await auth.application_by_key(accessKeyId))


@router.get("/{id}", response_model=Application, summary="Get an application")
async def get_application(auth: AuthDep, id: str) -> Response:
    return _json(await auth.get_application(id))


@router.put("/{id}", response_model=Application, summary="Rename an application")
async def update_application(
    auth: AuthDep, caller: Caller, id: str, body: Annotated[ApplicationRequest, Body()]
) -> Response:
    return _json(await auth.update_application(id, body.name, caller))


@router.delete(
    "/{id}",
    response_model=Message,
    summary="Delete an application with its access keys; its tokens stop working",
)
async def delete_application(auth: AuthDep, id: str) -> Response:
    return _json(await auth.delete_application(id))


@router.post(
    "/{applicationId}/roles/{role}",
    response_model=Application,
    summary="Give an application a role (ADMIN, METADATA_MANAGER, WORKFLOW_MANAGER, WORKER, USER)",
)
async def add_role(auth: AuthDep, caller: Caller, applicationId: str, role: str) -> Response:
    return _json(await auth.add_role(applicationId, role, caller))


@router.delete(
    "/{applicationId}/roles/{role}",
    response_model=Application,
    summary="Take a role from an application",
)
async def remove_role(auth: AuthDep, caller: Caller, applicationId: str, role: str) -> Response:
    return _json(await auth.remove_role(applicationId, role, caller))


@router.post(
    "/{id}/accessKeys",
    response_model=CreatedAccessKey,
    summary="Create an access key; its secret is shown in this answer only",
)
async def create_access_key(auth: AuthDep, id: str) -> Response:
    return _json(await auth.create_access_key(id))


@router.get(
    "/{id}/accessKeys", response_model=list[AccessKey], summary="An application's access keys"
)
async def list_access_keys(auth: AuthDep, id: str) -> Response:
    return _json(await auth.list_access_keys(id))


@router.post(
    "/{applicationId}/accessKeys/{keyId}/status",
    response_model=AccessKey,
    summary="Toggle an access key between ACTIVE and INACTIVE",
)
async def toggle_access_key(auth: AuthDep, applicationId: str, keyId: str) -> Response:
    return _json(await auth.toggle_access_key(applicationId, keyId))


@router.delete(
    "/{applicationId}/accessKeys/{keyId}",
    response_model=Message,
    summary="Delete an access key; its tokens stop working",
)
async def delete_access_key(auth: AuthDep, applicationId: str, keyId: str) -> Response:
    return _json(await auth.delete_access_key(applicationId, keyId))
