"""Roles, permissions, and the one check every router declares.

Routers state what an endpoint needs, nothing else:

    @router.post("/taskdefs", dependencies=[require(Permission.METADATA_WRITE)])

or, when the endpoint needs to know who calls:

    async def start(caller: Annotated[Principal, require(Permission.WORKFLOW_EXECUTE)]): ...

The check authenticates the caller (X-Authorization, or `Authorization: Bearer` for curl),
then authorizes: a role that carries the permission, or, for permissions on one named
resource (a secret), an explicit grant answered by AuthService.grants.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Any

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

if TYPE_CHECKING:
    from app.auth.service import AuthService
    from app.config import Settings


class Role(StrEnum):
    ADMIN = "ADMIN"
    METADATA_MANAGER = "METADATA_MANAGER"
    WORKFLOW_MANAGER = "WORKFLOW_MANAGER"
    WORKER = "WORKER"
    USER = "USER"


class Permission(StrEnum):
    # Any valid token (who am I).
    AUTHENTICATED = "AUTHENTICATED"
    # Definitions.
    METADATA_READ = "METADATA_READ"
    TASK_DEF_READ = "TASK_DEF_READ"  # workers read the task definitions they serve
    METADATA_WRITE = "METADATA_WRITE"
    # Executions.
    WORKFLOW_READ = "WORKFLOW_READ"
    WORKFLOW_EXECUTE = "WORKFLOW_EXECUTE"  # start, terminate, pause, retry, rerun, ...
    TASK_WORK = "TASK_WORK"  # poll, ack, update tasks, add task logs
    # Schedules.
    SCHEDULE_READ = "SCHEDULE_READ"
    SCHEDULE_WRITE = "SCHEDULE_WRITE"
    # Secrets: reading a value needs ADMIN or an explicit grant on that secret.
    SECRET_READ = "SECRET_READ"
    SECRET_WRITE = "SECRET_WRITE"
    # Applications, access keys, roles.
    APPLICATION_MANAGE = "APPLICATION_MANAGE"
    # /metrics when BATON_METRICS_PUBLIC=false.
    METRICS_READ = "METRICS_READ"


_READ = {
    Permission.METADATA_READ,
    Permission.TASK_DEF_READ,
    Permission.WORKFLOW_READ,
    Permission.SCHEDULE_READ,
    Permission.METRICS_READ,
}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.METADATA_MANAGER: frozenset({*_READ, Permission.METADATA_WRITE, Permission.SECRET_WRITE}),
    Role.WORKFLOW_MANAGER: frozenset(
        {*_READ, Permission.WORKFLOW_EXECUTE, Permission.SCHEDULE_WRITE}
    ),
    Role.WORKER: frozenset({Permission.TASK_DEF_READ, Permission.TASK_WORK}),
    Role.USER: frozenset(_READ),
}


def roles_granting(permission: Permission) -> list[Role]:
    return [role for role, perms in ROLE_PERMISSIONS.items() if permission in perms]


@dataclass(frozen=True)
class Principal:
    """Who is calling: an application (through one of its access keys), or the anonymous
    admin when authentication is disabled."""

    id: str
    name: str
    roles: frozenset[Role]
    key_id: str | None = None

    @property
    def permissions(self) -> frozenset[Permission]:
        granted: set[Permission] = {Permission.AUTHENTICATED}
        for role in self.roles:
            granted |= ROLE_PERMISSIONS[role]
        return frozenset(granted)

    def has(self, permission: Permission) -> bool:
        return permission in self.permissions


ANONYMOUS_ADMIN = Principal(id="anonymous", name="anonymous", roles=frozenset({Role.ADMIN}))
# The caller of an endpoint made public by setting (e.g. /metrics): no token, no roles.
PUBLIC = Principal(id="public", name="public", roles=frozenset())


# Declaring the header through FastAPI's security machinery puts the Authorize button in
# Swagger UI and the scheme in /api-docs; the value itself is read by AuthService.
x_authorization = APIKeyHeader(
    name="X-Authorization",
    scheme_name="X-Authorization",
    description="A token from POST /api/token (no `Bearer ` prefix).",
    auto_error=False,
)


class Requirement:
    """The dependency `require()` builds. Callable by FastAPI; its attributes let tests (and
    anyone auditing the route table) see what each route demands."""

    def __init__(
        self,
        permission: Permission,
        resource_param: str | None,
        open_if: Callable[[Settings], bool] | None,
    ) -> None:
        self.permission = permission
        self.resource_param = resource_param
        self.open_if = open_if

    async def __call__(
        self,
        request: Request,
        _header: str | None = Security(x_authorization),
    ) -> Principal:
        auth: AuthService = request.app.state.services.auth
        if self.open_if is not None and self.open_if(auth.settings):
            return PUBLIC if auth.enabled else ANONYMOUS_ADMIN
        principal = await auth.authenticate(request.headers)
        resource = request.path_params.get(self.resource_param) if self.resource_param else None
        await auth.authorize(principal, self.permission, resource)
        request.state.principal = principal
        return principal


@cache
def _requirement(
    permission: Permission,
    resource_param: str | None,
    open_if: Callable[[Settings], bool] | None,
) -> Requirement:
    # One instance per distinct requirement, so FastAPI's per-request dependency cache runs
    # the check once even when a router and an endpoint parameter both declare it.
    return Requirement(permission, resource_param, open_if)


def require(
    permission: Permission,
    *,
    resource_param: str | None = None,
    open_if: Callable[[Settings], bool] | None = None,
) -> Any:
    """The permission check, as a FastAPI dependency.

    `resource_param` names the path parameter identifying the resource (e.g. a secret's key)
    so an explicit grant on that resource can stand in for the role permission.
    `open_if(settings)` true makes the endpoint public (e.g. /metrics by setting)."""
    return Depends(_requirement(permission, resource_param, open_if))


def requirement_of(dependency: Any) -> Requirement | None:
    call = getattr(dependency, "call", None) or getattr(dependency, "dependency", None)
    return call if isinstance(call, Requirement) else None
