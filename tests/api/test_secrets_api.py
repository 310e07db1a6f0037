"""/api/secrets: Orkes' SecretResource contract, the PUT body rule, permissions, and values
encrypted at rest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from app.auth.permissions import Role
from app.config import Settings
from app.store.db import Database
from app.store.tables import secret_versions, secrets
from tests.conftest import TokenFor

Json = dict[str, Any]
TEXT = {"Content-Type": "text/plain"}
JSON = {"Content-Type": "application/json"}


async def _put(
    client: httpx.AsyncClient,
    name: str,
    body: str | bytes,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return await client.put(f"/api/secrets/{name}", content=body, headers=headers or TEXT)


async def _stored(client: httpx.AsyncClient, name: str, body: str | bytes, **kw: Any) -> str:
    response = await _put(client, name, body, **kw)
    assert response.status_code == 200, response.text
    return (await client.get(f"/api/secrets/{name}")).text


async def _as(
    anon_client: httpx.AsyncClient, token_for: TokenFor, *roles: Role
) -> httpx.AsyncClient:
    anon_client.headers["X-Authorization"] = await token_for(*roles)
    return anon_client


# -- PUT and GET ------------------------------------------------------------------------


async def test_put_then_get_returns_the_raw_value_as_text_plain(client: httpx.AsyncClient) -> None:
    await _put(client, "api_token", "s3cr3t-value")
    response = await client.get("/api/secrets/api_token")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "s3cr3t-value"


async def test_put_answers_the_new_version_without_echoing_the_value(
    client: httpx.AsyncClient,
) -> None:
    response = await _put(client, "api_token", "s3cr3t-value")
    assert response.json() == {"name": "api_token", "version": 1}
    assert response.headers["etag"] == '"1"'
    assert "s3cr3t-value" not in response.text


async def test_put_again_replaces_the_value(client: httpx.AsyncClient) -> None:
    await _put(client, "api_token", "first")
    assert await _stored(client, "api_token", "second") == "second"


async def test_raw_body_under_application_json_is_stored_verbatim(
    client: httpx.AsyncClient,
) -> None:
    # What the Python and Java SDKs send for a plain value.
    assert await _stored(client, "k", "plain-value", headers=JSON) == "plain-value"


async def test_json_quoted_body_is_decoded_as_the_js_sdk_and_docs_curl_send(
    client: httpx.AsyncClient,
) -> None:
    assert await _stored(client, "k", json.dumps('mySecretValue "quoted" é'), headers=JSON) == (
        'mySecretValue "quoted" é'
    )


async def test_json_object_body_is_stored_verbatim(client: httpx.AsyncClient) -> None:
    body = '{"username": "svc", "password": "pw"}'
    assert await _stored(client, "db-credentials", body, headers=JSON) == body


async def test_quoted_text_that_is_not_one_json_string_is_stored_verbatim(
    client: httpx.AsyncClient,
) -> None:
    body = '"a" and "b"'
    assert await _stored(client, "k", body) == body


async def test_python_sdk_escaping_arrives_and_is_stored_as_sent(
    client: httpx.AsyncClient,
) -> None:
    # conductor-python sends json.dumps(value) without its outer quotes (documented quirk).
    sent = json.dumps('a"b\nc')[1:-1]
    assert sent == 'a\\"b\\nc'
    assert await _stored(client, "k", sent, headers=JSON) == sent


async def test_put_without_content_type_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.put("/api/secrets/k", content=b"bytes-only")
    assert response.status_code == 200
    assert (await client.get("/api/secrets/k")).text == "bytes-only"


async def test_unicode_value_round_trips(client: httpx.AsyncClient) -> None:
    value = "pässwörd-🔑"
    assert await _stored(client, "k", value.encode(), headers=TEXT) == value


async def test_get_unknown_secret_is_404_in_conductor_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/secrets/missing")
    assert response.status_code == 404
    body = response.json()
    assert body["message"] == "Secret 'missing' not found"
    assert body["status"] == 404 and body["retryable"] is False


# -- bad input writes nothing -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "body", "headers"),
    [
        ("k", b"", TEXT),
        ("k", b'""', JSON),
        ("k", b"\xff\xfe-not-utf8", TEXT),
        ("k", b'"\\ud800"', JSON),
        ("has.dot", b"v", TEXT),
        ("has space", b"v", TEXT),
        ("x" * 256, b"v", TEXT),
    ],
    ids=["empty", "empty-json", "not-utf8", "lone-surrogate", "dot", "space", "long-name"],
)
async def test_bad_put_is_400_and_writes_nothing(
    client: httpx.AsyncClient, name: str, body: bytes, headers: dict[str, str]
) -> None:
    response = await _put(client, name, body, headers)
    assert response.status_code == 400, response.text
    assert response.json()["status"] == 400
    assert (await client.post("/api/secrets")).json() == []


async def test_value_over_the_size_limit_is_400_without_the_value(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    value = "v" * (settings.secrets_max_value_bytes + 1)
    response = await _put(client, "k", value)
    assert response.status_code == 400
    assert "limit" in response.json()["message"]
    assert value[:50] not in response.text
    assert (await client.get("/api/secrets/k/exists")).json() is False


async def test_value_at_the_size_limit_is_stored(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    value = "v" * settings.secrets_max_value_bytes
    assert await _stored(client, "k", value) == value


@pytest.mark.parametrize(
    "content_type", ["multipart/form-data", "application/x-www-form-urlencoded"]
)
async def test_form_bodies_are_415(client: httpx.AsyncClient, content_type: str) -> None:
    response = await _put(client, "k", b"value=x", {"Content-Type": content_type})
    assert response.status_code == 415
    assert (await client.get("/api/secrets/k/exists")).json() is False


# -- delete, exists, lists --------------------------------------------------------------


async def test_delete_removes_the_secret(client: httpx.AsyncClient) -> None:
    await _put(client, "k", "v")
    assert (await client.delete("/api/secrets/k")).status_code == 200
    assert (await client.get("/api/secrets/k")).status_code == 404


async def test_delete_unknown_secret_is_404(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/secrets/missing")
    assert response.status_code == 404
    assert response.json()["message"] == "Secret 'missing' not found"


async def test_exists_is_a_json_boolean(client: httpx.AsyncClient) -> None:
    await _put(client, "k", "v")
    assert (await client.get("/api/secrets/k/exists")).json() is True
    absent = await client.get("/api/secrets/nope/exists")
    assert (absent.status_code, absent.json()) == (200, False)


async def test_post_lists_every_name(client: httpx.AsyncClient) -> None:
    for name in ("b", "a", "c"):
        await _put(client, name, "v")
    assert (await client.post("/api/secrets", content=b"")).json() == ["a", "b", "c"]


async def test_get_lists_the_names_the_caller_may_read(
    client: httpx.AsyncClient, anon_client: httpx.AsyncClient, token_for: TokenFor
) -> None:
    await _put(client, "a", "v")
    assert (await client.get("/api/secrets")).json() == ["a"]
    user = await _as(anon_client, token_for, Role.USER)
    assert (await user.get("/api/secrets")).json() == []
    assert (await user.post("/api/secrets")).json() == ["a"]


async def test_get_list_honours_repeated_access_values(
    client: httpx.AsyncClient, anon_client: httpx.AsyncClient, token_for: TokenFor
) -> None:
    await _put(client, "a", "v")
    manager = await _as(anon_client, token_for, Role.METADATA_MANAGER)
    assert (await manager.get("/api/secrets", params={"access": "UPDATE"})).json() == ["a"]
    both = await manager.get("/api/secrets", params=[("access", "UPDATE"), ("access", "READ")])
    assert both.json() == []


async def test_unknown_access_value_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/secrets", params={"access": "PEEK"})
    assert response.status_code == 400


async def test_secrets_v2_lists_names_with_tags(client: httpx.AsyncClient) -> None:
    await _put(client, "a", "v")
    await _put(client, "b", "v")
    await client.put("/api/secrets/a/tags", json=[{"key": "env", "value": "prod"}])
    assert (await client.get("/api/secrets-v2")).json() == [
        {"name": "a", "tags": [{"key": "env", "value": "prod"}]},
        {"name": "b", "tags": []},
    ]


@pytest.mark.parametrize("path", ["clearLocalCache", "clearRedisCache"])
async def test_cache_clearing_endpoints_answer_200(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(f"/api/secrets/{path}")).status_code == 200


# -- tags -------------------------------------------------------------------------------


async def test_tags_put_upserts_by_key_and_ignores_type(client: httpx.AsyncClient) -> None:
    await _put(client, "k", "v")
    first = [{"key": "env", "value": "dev", "type": "METADATA"}, {"key": "team", "value": "a"}]
    await client.put("/api/secrets/k/tags", json=first)
    await client.put("/api/secrets/k/tags", json=[{"key": "env", "value": "prod"}])
    assert (await client.get("/api/secrets/k/tags")).json() == [
        {"key": "env", "value": "prod"},
        {"key": "team", "value": "a"},
    ]


async def test_tags_delete_removes_the_given_tags(client: httpx.AsyncClient) -> None:
    await _put(client, "k", "v")
    tags = [{"key": "env", "value": "prod"}, {"key": "team", "value": "a"}]
    await client.put("/api/secrets/k/tags", json=tags)
    response = await client.request("DELETE", "/api/secrets/k/tags", json=tags[:1])
    assert response.status_code == 200
    assert (await client.get("/api/secrets/k/tags")).json() == tags[1:]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_tags_of_an_unknown_secret_are_404(client: httpx.AsyncClient, method: str) -> None:
    body = None if method == "GET" else [{"key": "env", "value": "prod"}]
    response = await client.request(method, "/api/secrets/missing/tags", json=body)
    assert response.status_code == 404


async def test_deleting_a_secret_drops_its_tags(client: httpx.AsyncClient) -> None:
    await _put(client, "k", "v")
    await client.put("/api/secrets/k/tags", json=[{"key": "env", "value": "prod"}])
    await client.delete("/api/secrets/k")
    await _put(client, "k", "v")
    assert (await client.get("/api/secrets/k/tags")).json() == []


# -- permissions ------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.WORKER, Role.USER, Role.WORKFLOW_MANAGER])
async def test_roles_without_secret_read_cannot_read_a_value(
    client: httpx.AsyncClient, anon_client: httpx.AsyncClient, token_for: TokenFor, role: Role
) -> None:
    await _put(client, "k", "the-value")
    c = await _as(anon_client, token_for, role)
    response = await c.get("/api/secrets/k")
    assert response.status_code == 403
    assert "the-value" not in response.text


async def test_metadata_manager_writes_but_cannot_read(
    client: httpx.AsyncClient, anon_client: httpx.AsyncClient, token_for: TokenFor
) -> None:
    manager = await _as(anon_client, token_for, Role.METADATA_MANAGER)
    assert (await _put(manager, "k", "from-manager")).status_code == 200
    assert (await manager.get("/api/secrets/k")).status_code == 403
    assert (await client.get("/api/secrets/k")).text == "from-manager"


@pytest.mark.parametrize("role", [Role.WORKER, Role.USER, Role.WORKFLOW_MANAGER])
async def test_roles_without_secret_write_cannot_write_or_delete(
    client: httpx.AsyncClient, anon_client: httpx.AsyncClient, token_for: TokenFor, role: Role
) -> None:
    await _put(client, "k", "original")
    c = await _as(anon_client, token_for, role)
    assert (await _put(c, "k", "changed")).status_code == 403
    assert (await c.delete("/api/secrets/k")).status_code == 403
    assert (await client.get("/api/secrets/k")).text == "original"


async def test_a_worker_cannot_list_names(
    anon_client: httpx.AsyncClient, token_for: TokenFor
) -> None:
    worker = await _as(anon_client, token_for, Role.WORKER)
    assert (await worker.post("/api/secrets")).status_code == 403
    assert (await worker.get("/api/secrets/k/exists")).status_code == 403


async def test_no_token_is_401(anon_client: httpx.AsyncClient) -> None:
    assert (await anon_client.get("/api/secrets/k")).status_code == 401


# -- at rest ----------------------------------------------------------------------------

PLAINTEXT = "plaintext-token-4f1d9c2b7a"


async def test_values_are_encrypted_at_rest(
    client: httpx.AsyncClient, db: Database, settings: Settings, backend: str
) -> None:
    await _put(client, "k", PLAINTEXT)
    await _put(client, "k", PLAINTEXT + "-2")
    async with db.read() as conn:
        stored = list(await conn.scalars(sa.select(secrets.c.value)))
        stored += list(await conn.scalars(sa.select(secret_versions.c.value)))
    assert len(stored) == 3
    assert all(v.startswith("v1.test.") and PLAINTEXT not in v for v in stored)
    if backend == "sqlite":
        path = Path(str(settings.database.sqlite_path))
        files = [p for p in (path, Path(f"{path}-wal")) if p.exists()]
        raw = b"".join(p.read_bytes() for p in files)
        assert b"v1.test." in raw  # the scan does see the rows
        assert PLAINTEXT.encode() not in raw
