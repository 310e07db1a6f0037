"""Roles and their permissions; reading the token from the request headers."""

from __future__ import annotations

import pytest

from app.auth.permissions import ROLE_PERMISSIONS, Permission, Principal, Role
from app.auth.service import extract_token
from app.errors import Unauthorized


def _principal(*roles: Role) -> Principal:
    return Principal(id="a", name="a", roles=frozenset(roles))


def test_admin_has_every_permission() -> None:
    assert all(_principal(Role.ADMIN).has(p) for p in Permission)


def test_worker_only_polls_and_updates_tasks_and_reads_task_defs() -> None:
    assert _principal(Role.WORKER).permissions == {
        Permission.AUTHENTICATED,
        Permission.TASK_DEF_READ,
        Permission.TASK_WORK,
    }


def test_user_reads_but_writes_nothing() -> None:
    user = _principal(Role.USER)
    assert user.has(Permission.METADATA_READ) and user.has(Permission.WORKFLOW_READ)
    writes = {
        Permission.METADATA_WRITE,
        Permission.WORKFLOW_EXECUTE,
        Permission.TASK_WORK,
        Permission.SCHEDULE_WRITE,
        Permission.SECRET_WRITE,
        Permission.APPLICATION_MANAGE,
    }
    assert not any(user.has(p) for p in writes)


def test_metadata_manager_writes_definitions_but_does_not_run_workflows() -> None:
    manager = _principal(Role.METADATA_MANAGER)
    assert manager.has(Permission.METADATA_WRITE)
    assert not manager.has(Permission.WORKFLOW_EXECUTE)


def test_workflow_manager_runs_workflows_and_schedules_but_does_not_edit_definitions() -> None:
    manager = _principal(Role.WORKFLOW_MANAGER)
    assert manager.has(Permission.WORKFLOW_EXECUTE) and manager.has(Permission.SCHEDULE_WRITE)
    assert not manager.has(Permission.METADATA_WRITE)


def test_only_admin_reads_secret_values_by_role() -> None:
    assert [r for r, perms in ROLE_PERMISSIONS.items() if Permission.SECRET_READ in perms] == [
        Role.ADMIN
    ]


def test_only_admin_manages_applications() -> None:
    assert [
        r for r, perms in ROLE_PERMISSIONS.items() if Permission.APPLICATION_MANAGE in perms
    ] == [Role.ADMIN]


def test_an_application_without_roles_is_only_authenticated() -> None:
    assert _principal().permissions == {Permission.AUTHENTICATED}


@pytest.mark.parametrize(
    "headers",
    [
        {"x-authorization": "tok"},
        {"x-authorization": "Bearer tok"},
        {"authorization": "Bearer tok"},
        {"authorization": "bearer  tok "},
        {"x-authorization": " ", "authorization": "Bearer tok"},
    ],
)
def test_token_is_read_from_x_authorization_or_a_bearer_header(headers: dict[str, str]) -> None:
    assert extract_token(headers) == "tok"


@pytest.mark.parametrize(
    "headers", [{}, {"x-authorization": ""}, {"authorization": "Basic dXNlcjpwdw=="}]
)
def test_missing_token_is_invalid_token_with_orkes_message(headers: dict[str, str]) -> None:
    with pytest.raises(Unauthorized) as caught:
        extract_token(headers)
    assert (caught.value.error, caught.value.message) == (
        "INVALID_TOKEN",
        "Token cannot be null or empty",
    )
