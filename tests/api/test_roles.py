"""What each role may do with definitions, and the per-resource grant hook for secrets."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from app.auth.permissions import ANONYMOUS_ADMIN, Permission, Principal, Role
from app.clock import ManualClock
from app.config import Settings
from app.main import create_app
from tests.conftest import TokenFor, asgi_client

TASK_DEF = [{"name": "encode"}]
WORKFLOW_DEF = {
    "name": "flow",
    "version": 1,
    "schemaVersion": 2,
    "tasks": [{"name": "encode", "taskReferenceName": "encode_ref", "type": "SIMPLE"}],
}


async def _as(
    anon_client: httpx.AsyncClient, token_for: TokenFor, *roles: Role
) -> httpx.AsyncClient:
    anon_client.headers["X-Authorization"] = await token_for(*roles)
    return anon_client


@pytest.mark.parametrize("role", [Role.USER, Role.METADATA_MANAGER, Role.WORKFLOW_MANAGER])
async def test_reading_roles_read_workflow_definitions(
    anon_client: httpx.AsyncClient, token_for: TokenFor, role: Role
) -> None:
    c = await _as(anon_client, token_for, role)
    assert (await c.get("/api/metadata/workflow")).status_code == 200


@pytest.mark.parametrize("role", [Role.USER, Role.WORKFLOW_MANAGER, Role.WORKER])
async def test_roles_other_than_metadata_manager_cannot_write_definitions(
    anon_client: httpx.AsyncClient, token_for: TokenFor, role: Role
) -> None:
    c = await _as(anon_client, token_for, role)
    response = await c.post("/api/metadata/taskdefs", json=TASK_DEF)
    assert response.status_code == 403
    assert "METADATA_WRITE" in response.json()["message"]


async def test_a_forbidden_write_writes_nothing(
    anon_client: httpx.AsyncClient, client: httpx.AsyncClient, token_for: TokenFor
) -> None:
    c = await _as(anon_client, token_for, Role.USER)
    await c.post("/api/metadata/taskdefs", json=TASK_DEF)
    assert (await client.get("/api/metadata/taskdefs")).json() == []


async def test_metadata_manager_writes_definitions(
    anon_client: httpx.AsyncClient, token_for: TokenFor
) -> None:
    c = await _as(anon_client, token_for, Role.METADATA_MANAGER)
    assert (await c.post("/api/metadata/taskdefs", json=TASK_DEF)).status_code == 200
    assert (await c.post("/api/metadata/workflow", json=WORKFLOW_DEF)).status_code == 200
    assert (await c.delete("/api/metadata/workflow/flow/1")).status_code == 200


async def test_worker_reads_task_definitions(
    anon_client: httpx.AsyncClient, client: httpx.AsyncClient, token_for: TokenFor
) -> None:
    await client.post("/api/metadata/taskdefs", json=TASK_DEF)
    c = await _as(anon_client, token_for, Role.WORKER)
    assert (await c.get("/api/metadata/taskdefs/encode")).status_code == 200


async def test_worker_cannot_read_workflow_definitions(
    anon_client: httpx.AsyncClient, token_for: TokenFor
) -> None:
    c = await _as(anon_client, token_for, Role.WORKER)
    assert (await c.get("/api/metadata/workflow")).status_code == 403


async def test_roles_add_up(anon_client: httpx.AsyncClient, token_for: TokenFor) -> None:
    c = await _as(anon_client, token_for, Role.WORKER, Role.USER)
    assert (await c.get("/api/metadata/workflow")).status_code == 200


# -- secrets: ADMIN, or an explicit grant on that secret --------------------------------


class GrantsFor:
    def __init__(self, application_name: str, secret: str) -> None:
        self.application_name = application_name
        self.secret = secret

    async def allows(self, principal: Principal, permission: Permission, resource: str) -> bool:
        return (
            permission is Permission.SECRET_READ
            and principal.name == self.application_name
            and resource == self.secret
        )


@pytest.fixture
async def secrets_app(settings: Settings, clock: ManualClock) -> FastAPI:
    return create_app(settings, clock=clock)


async def _secret_status(app: FastAPI, roles: list[Role], name: str, key: str) -> int:
    await app.state.services.secrets.put(key, f"value-of-{key}", ANONYMOUS_ADMIN)
    auth = app.state.services.auth
    key_id, secret = await auth.create_key_for(name, roles)
    async with asgi_client(app) as c:
        token = (await c.post("/api/token", json={"keyId": key_id, "keySecret": secret})).json()
        response = await c.get(f"/api/secrets/{key}", headers={"X-Authorization": token["token"]})
        return response.status_code


async def test_admin_reads_any_secret(secrets_app: FastAPI) -> None:
    async with secrets_app.router.lifespan_context(secrets_app):
        assert await _secret_status(secrets_app, [Role.ADMIN], "ops", "db_password") == 200


async def test_without_a_grant_no_other_role_reads_a_secret(secrets_app: FastAPI) -> None:
    async with secrets_app.router.lifespan_context(secrets_app):
        roles: list[Role] = [r for r in Role if r is not Role.ADMIN]
        assert await _secret_status(secrets_app, roles, "ops", "db_password") == 403


async def test_a_grant_on_one_secret_allows_reading_that_secret_only(
    secrets_app: FastAPI,
) -> None:
    async with secrets_app.router.lifespan_context(secrets_app):
        secrets_app.state.services.auth.grants = GrantsFor("rotator", "api_token")
        assert await _secret_status(secrets_app, [Role.USER], "rotator", "api_token") == 200
        assert await _secret_status(secrets_app, [Role.USER], "rotator", "db_password") == 403
