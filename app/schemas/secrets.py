"""Secrets API shapes: Orkes' TagObject, ExtendedSecret and AuthorizationRequest, plus
Baton's version, audit and metadata views (never a value)."""

from __future__ import annotations

from pydantic import Field

from app.schemas.common import Wire


class TagObject(Wire):
    """`{key, value}`; the Python SDK also sends `type: "METADATA"`, accepted and ignored."""

    key: str = Field(min_length=1, max_length=255)
    value: str = Field(default="", max_length=1024)
    type: str | None = None


class Tag(Wire):
    key: str
    value: str


class ExtendedSecret(Wire):
    name: str
    tags: list[Tag] = Field(default_factory=list)


class SecretWritten(Wire):
    """Answer of PUT and rollback: the new version (also in the ETag header), no value."""

    name: str
    version: int
    restoredFrom: int | None = None


class SecretVersion(Wire):
    version: int
    createdAt: int
    writtenBy: str | None = None
    workflowId: str | None = None
    current: bool


class AuditEntry(Wire):
    id: int
    name: str
    time: int
    actor: str | None = None
    action: str
    version: int | None = None
    workflowId: str | None = None
    detail: str | None = None


class SecretMetadata(Wire):
    name: str
    version: int
    createTime: int
    updateTime: int
    createdBy: str | None = None
    updatedBy: str | None = None
    lastRotatedTime: int | None = None
    lastRotatedBy: str | None = None
    tags: list[Tag] = Field(default_factory=list)


class SubjectRef(Wire):
    type: str = Field(min_length=1, max_length=32)
    id: str = Field(min_length=1, max_length=255)


class TargetRef(Wire):
    type: str = Field(min_length=1, max_length=32)
    id: str = Field(min_length=1, max_length=255)


class AuthorizationRequest(Wire):
    """Body of POST and DELETE /api/auth/authorization (Orkes)."""

    subject: SubjectRef
    target: TargetRef
    access: list[str] = Field(min_length=1, max_length=5)
