"""Applications, access keys, tokens and user info in Orkes' JSON shapes."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from app.schemas.common import Wire


def _not_blank(v: str) -> str:
    if not v.strip():
        raise ValueError("must not be blank")
    return v


class ApplicationRequest(Wire):
    """Body of POST /api/applications and PUT /api/applications/{id}."""

    name: str = Field(min_length=1, max_length=255)

    _name_not_blank = field_validator("name")(_not_blank)


class TokenRequest(Wire):
    """Body of POST /api/token."""

    keyId: str = Field(min_length=1, max_length=255)
    keySecret: str = Field(min_length=1, max_length=1024)
    # Requested lifetime in ms; at most BATON_TOKEN_TTL_SECONDS. Orkes reads a negative value
    # as "never expires"; Baton does not issue such tokens.
    expiration: int | None = None


class Token(Wire):
    token: str


class Application(Wire):
    id: str
    name: str
    createdBy: str | None = None
    updatedBy: str | None = None
    createTime: int
    updateTime: int
    # Baton extension: the application's roles (Orkes shows them only in its UI).
    roles: list[str] = Field(default_factory=list)


class AccessKey(Wire):
    id: str
    createdAt: int
    status: str


class CreatedAccessKey(Wire):
    id: str
    secret: str


class Message(Wire):
    message: str


class PermissionName(Wire):
    name: str


class RoleInfo(Wire):
    name: str
    permissions: list[PermissionName]


class UserInfo(Wire):
    id: str
    name: str
    roles: list[RoleInfo]
    groups: list[Any] = Field(default_factory=list)
    uuid: str
    applicationUser: bool
    contactInformation: dict[str, str] = Field(default_factory=dict)
    namespace: str | None = None
    orkesWorkersApp: bool = False
    orkesApiGateway: bool = False
    orkesApp: bool = False
