"""/api/secrets: Orkes' SecretResource, plus versions, rollback, check-and-set and audit.

Permissions: a value is read with SECRET_READ (ADMIN) or a READ grant on that secret; values
are written, rolled back and deleted with SECRET_WRITE (ADMIN, METADATA_MANAGER) or an
UPDATE / CREATE / DELETE grant; names, `exists`, tags and metadata need METADATA_READ;
versions and audit need SECRET_WRITE. `GET /api/secrets` answers any caller with the names
it may use. Grants themselves (/api/auth/authorization) are ADMIN's.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from app.api.deps import SecretsDep
from app.auth.permissions import Permission, Principal, require
from app.schemas.secrets import (
    AuditEntry,
    AuthorizationRequest,
    ExtendedSecret,
    SecretMetadata,
    SecretVersion,
    SecretWritten,
    TagObject,
)
from app.secrets.service import AUDIT_LIMIT_MAX, Written, etag, parse_precondition, value_from_body

router = APIRouter(prefix="/api", tags=["secret-resource"])
grants_router = APIRouter(prefix="/api/auth/authorization", tags=["authorization-resource"])

ValueReader = Annotated[Principal, require(Permission.SECRET_READ, resource_param="key")]
ValueWriter = Annotated[Principal, require(Permission.SECRET_WRITE, resource_param="key")]
Authenticated = Annotated[Principal, require(Permission.AUTHENTICATED)]
READ_NAMES = [require(Permission.METADATA_READ)]
WRITE_SECRETS = [require(Permission.SECRET_WRITE)]
MANAGE_GRANTS = [require(Permission.APPLICATION_MANAGE)]

IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description='Write only over this version (`3` or the ETag `"3"`); `0` = create only',
    ),
]
IfNoneMatch = Annotated[str | None, Header(alias="If-None-Match", description="`*` = create only")]

_VALUE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            "The secret's value as the raw body. A body that is exactly one JSON string "
            'literal ("value") is decoded; anything else is stored verbatim.'
        ),
        "content": {
            "text/plain": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "string"}},
        },
    }
}


def _json(data: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(data, headers=headers)


def _written(written: Written) -> JSONResponse:
    return _json(written.to_json(), {"ETag": etag(written.version)})


def _tag_pairs(tags: list[TagObject]) -> list[tuple[str, str]]:
    return [(t.key, t.value) for t in tags]


# Fixed paths before /secrets/{key}, which would take them for a key.


@router.get(
    "/secrets/clearLocalCache",
    summary="Clear the secrets cache (Baton keeps none; answered for the Orkes clients)",
    dependencies=WRITE_SECRETS,
)
async def clear_local_cache() -> Response:
    return _json({})


@router.get(
    "/secrets/clearRedisCache",
    summary="Clear the secrets cache (Baton keeps none; answered for the Orkes clients)",
    dependencies=WRITE_SECRETS,
)
async def clear_redis_cache() -> Response:
    return _json({})


@router.post(
    "/secrets", response_model=list[str], summary="All secret names", dependencies=READ_NAMES
)
async def list_all_names(secrets: SecretsDep) -> Response:
    return _json(await secrets.list_all())


@router.get(
    "/secrets",
    response_model=list[str],
    summary="Names of the secrets the caller holds the given access on (default READ)",
)
async def list_accessible_names(
    secrets: SecretsDep,
    caller: Authenticated,
    access: Annotated[list[str] | None, Query(description="READ, CREATE, UPDATE, ...")] = None,
) -> Response:
    return _json(await secrets.list_accessible(caller, access or []))


@router.get(
    "/secrets-v2",
    response_model=list[ExtendedSecret],
    summary="Names and tags of the secrets the caller may read",
)
async def list_extended(secrets: SecretsDep, caller: Authenticated) -> Response:
    return _json(await secrets.list_extended(caller))


@router.put(
    "/secrets/{key}",
    response_model=SecretWritten,
    summary="Create or update a secret; the body is the value (see the README's PUT body rule)",
    openapi_extra=_VALUE_BODY,
)
async def put_secret(
    secrets: SecretsDep,
    caller: ValueWriter,
    request: Request,
    key: str,
    if_match: IfMatch = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    expect = parse_precondition(if_match, if_none_match)
    value = value_from_body(
        await request.body(), request.headers.get("content-type"), secrets.max_value_bytes
    )
    return _written(await secrets.put(key, value, caller, expect))


@router.get(
    "/secrets/{key}",
    response_class=PlainTextResponse,
    summary="A secret's value, as text/plain",
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def get_secret(secrets: SecretsDep, caller: ValueReader, key: str) -> Response:
    value, version = await secrets.get_value(key, caller)
    return PlainTextResponse(value, headers={"ETag": etag(version), "Cache-Control": "no-store"})


@router.delete("/secrets/{key}", summary="Delete a secret with its kept versions and tags")
async def delete_secret(secrets: SecretsDep, caller: ValueWriter, key: str) -> Response:
    await secrets.delete(key, caller)
    return Response(status_code=200)


@router.get(
    "/secrets/{key}/exists",
    response_model=bool,
    summary="Whether a secret exists (false, not 404, when it does not)",
    dependencies=READ_NAMES,
)
async def secret_exists(secrets: SecretsDep, key: str) -> Response:
    return _json(await secrets.exists(key))


# -- tags -------------------------------------------------------------------------------


@router.put(
    "/secrets/{key}/tags",
    summary="Add tags (a tag with an existing key replaces its value)",
    dependencies=WRITE_SECRETS,
)
async def put_tags(
    secrets: SecretsDep, key: str, body: Annotated[list[TagObject], Body()]
) -> Response:
    await secrets.put_tags(key, _tag_pairs(body))
    return Response(status_code=200)


@router.get(
    "/secrets/{key}/tags",
    response_model=list[TagObject],
    summary="A secret's tags",
    dependencies=READ_NAMES,
)
async def get_tags(secrets: SecretsDep, key: str) -> Response:
    return _json(await secrets.get_tags(key))


@router.delete("/secrets/{key}/tags", summary="Remove tags", dependencies=WRITE_SECRETS)
async def delete_tags(
    secrets: SecretsDep, key: str, body: Annotated[list[TagObject], Body()]
) -> Response:
    await secrets.delete_tags(key, _tag_pairs(body))
    return Response(status_code=200)


# -- beyond Orkes: metadata, versions, rollback, audit ----------------------------------


@router.get(
    "/secrets/{key}/metadata",
    response_model=SecretMetadata,
    summary="Version, times, authors, last rotation and tags of a secret (no value)",
    dependencies=READ_NAMES,
)
async def get_metadata(secrets: SecretsDep, key: str) -> Response:
    data = await secrets.metadata(key)
    return _json(data, {"ETag": etag(data["version"])})


@router.get(
    "/secrets/{key}/versions",
    response_model=list[SecretVersion],
    summary="The kept versions of a secret, newest first (no values)",
    dependencies=WRITE_SECRETS,
)
async def list_versions(secrets: SecretsDep, key: str) -> Response:
    return _json(await secrets.versions(key))


@router.post(
    "/secrets/{key}/rollback",
    response_model=SecretWritten,
    summary="Restore the previous (or the given) version's value as a new version",
)
async def rollback(
    secrets: SecretsDep,
    caller: ValueWriter,
    key: str,
    version: Annotated[int | None, Query(ge=1, description="the kept version to restore")] = None,
    if_match: IfMatch = None,
) -> Response:
    expect = parse_precondition(if_match, None)
    return _written(await secrets.rollback(key, caller, version, expect))


@router.get(
    "/secrets/{key}/audit",
    response_model=list[AuditEntry],
    summary="Who read, wrote, rolled back or deleted a secret, newest first (no values)",
    dependencies=WRITE_SECRETS,
)
async def audit(
    secrets: SecretsDep,
    key: str,
    limit: Annotated[int, Query(ge=1, le=AUDIT_LIMIT_MAX)] = 100,
) -> Response:
    return _json(await secrets.audit(key, limit))


# -- grants (Orkes' AuthorizationResource, secrets only) ---------------------------------


@grants_router.post(
    "", summary="Grant a subject access to a secret (SECRET_NAME)", dependencies=MANAGE_GRANTS
)
async def grant(secrets: SecretsDep, body: Annotated[AuthorizationRequest, Body()]) -> Response:
    await secrets.grant(body)
    return Response(status_code=200)


@grants_router.delete(
    "", summary="Remove a subject's access to a secret", dependencies=MANAGE_GRANTS
)
async def revoke(secrets: SecretsDep, body: Annotated[AuthorizationRequest, Body()]) -> Response:
    await secrets.revoke(body)
    return Response(status_code=200)


@grants_router.get(
    "/{type}/{id}",
    summary="Access type -> subjects granted it, for one secret",
    dependencies=MANAGE_GRANTS,
)
async def grants_on(secrets: SecretsDep, type: str, id: str) -> Response:
    return _json(await secrets.grants_on(type, id))
