"""Beyond Orkes: versions, rollback, check-and-set (If-Match), audit, metadata, grants, and
the SecretService calls the engine makes (resolve, write, known values)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.auth.permissions import Role
from app.clock import ManualClock
from app.config import Settings
from app.errors import BadRequest, Forbidden
from app.secrets.service import SecretService
from tests.conftest import TokenFor

Json = dict[str, Any]
TEXT = {"Content-Type": "text/plain"}


async def _put(client: httpx.AsyncClient, name: str, value: str, **headers: str) -> httpx.Response:
    return await client.put(f"/api/secrets/{name}", content=value, headers={**TEXT, **headers})


async def _value(client: httpx.AsyncClient, name: str) -> str:
    return (await client.get(f"/api/secrets/{name}")).text


async def _actions(client: httpx.AsyncClient, name: str) -> list[str]:
    return [e["action"] for e in (await client.get(f"/api/secrets/{name}/audit")).json()]


def _service(app: FastAPI) -> SecretService:
    service: SecretService = app.state.services.secrets
    return service


async def _app_id(app: FastAPI, *roles: Role, name: str = "runner") -> str:
    auth = app.state.services.auth
    await auth.create_key_for(name, list(roles))
    apps = await auth.list_applications()
    app_id: str = next(a["id"] for a in apps if a["name"] == name)
    return app_id


# -- versions ---------------------------------------------------------------------------


async def test_every_put_is_a_new_version(client: httpx.AsyncClient) -> None:
    for value in ("one", "two", "three"):
        await _put(client, "k", value)
    versions = (await client.get("/api/secrets/k/versions")).json()
    assert [(v["version"], v["current"]) for v in versions] == [(3, True), (2, False), (1, False)]
    assert versions[0]["writtenBy"] == "admin"


async def test_versions_never_include_values(client: httpx.AsyncClient) -> None:
    await _put(client, "k", "value-one")
    text = (await client.get("/api/secrets/k/versions")).text
    assert "value-one" not in text


async def test_only_the_configured_number_of_versions_is_kept(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    kept = settings.secrets_versions_kept
    for i in range(kept + 3):
        await _put(client, "k", f"value-{i}")
    versions = [v["version"] for v in (await client.get("/api/secrets/k/versions")).json()]
    assert versions == list(range(kept + 3, 3, -1))


async def test_versions_of_unknown_secret_are_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/secrets/missing/versions")).status_code == 404


async def test_version_numbers_continue_after_delete_and_recreate(
    client: httpx.AsyncClient,
) -> None:
    await _put(client, "k", "one")
    await _put(client, "k", "two")
    await client.delete("/api/secrets/k")
    response = await _put(client, "k", "again")
    assert response.json()["version"] == 3
    versions = (await client.get("/api/secrets/k/versions")).json()
    assert [v["version"] for v in versions] == [3]


async def test_concurrent_writers_of_a_new_name_each_get_their_own_version(
    client: httpx.AsyncClient,
) -> None:
    responses = await asyncio.gather(*(_put(client, "k", f"value-{i}") for i in range(5)))
    assert sorted(r.status_code for r in responses) == [200] * 5
    assert sorted(r.json()["version"] for r in responses) == [1, 2, 3, 4, 5]
    versions = (await client.get("/api/secrets/k/versions")).json()
    assert [v["version"] for v in versions] == [5, 4, 3, 2, 1]


# -- rollback ---------------------------------------------------------------------------


async def test_rollback_restores_the_previous_value_as_a_new_version(
    client: httpx.AsyncClient,
) -> None:
    await _put(client, "k", "good")
    await _put(client, "k", "bad")
    response = await client.post("/api/secrets/k/rollback")
    assert response.status_code == 200
    assert response.json() == {"name": "k", "version": 3, "restoredFrom": 1}
    assert response.headers["etag"] == '"3"'
    assert await _value(client, "k") == "good"


async def test_rollback_to_a_chosen_version(client: httpx.AsyncClient) -> None:
    for value in ("one", "two", "three"):
        await _put(client, "k", value)
    response = await client.post("/api/secrets/k/rollback", params={"version": 1})
    assert response.json()["restoredFrom"] == 1
    assert await _value(client, "k") == "one"


async def test_rollback_without_a_previous_version_is_409(client: httpx.AsyncClient) -> None:
    await _put(client, "k", "only")
    response = await client.post("/api/secrets/k/rollback")
    assert response.status_code == 409
    assert await _value(client, "k") == "only"


async def test_rollback_to_a_version_no_longer_kept_is_404(client: httpx.AsyncClient) -> None:
    await _put(client, "k", "one")
    await _put(client, "k", "two")
    response = await client.post("/api/secrets/k/rollback", params={"version": 9})
    assert response.status_code == 404
    assert "versions kept: 1, 2" in response.json()["message"]


async def test_rollback_to_the_current_version_is_409(client: httpx.AsyncClient) -> None:
    await _put(client, "k", "one")
    await _put(client, "k", "two")
    response = await client.post("/api/secrets/k/rollback", params={"version": 2})
    assert response.status_code == 409


async def test_rollback_of_unknown_secret_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/secrets/missing/rollback")).status_code == 404


async def test_rollback_needs_secret_write(
    client: httpx.AsyncClient, anon_client: httpx.AsyncClient, token_for: TokenFor
) -> None:
    await _put(client, "k", "one")
    await _put(client, "k", "two")
    anon_client.headers["X-Authorization"] = await token_for(Role.USER)
    assert (await anon_client.post("/api/secrets/k/rollback")).status_code == 403
    assert await _value(client, "k") == "two"


# -- check-and-set ----------------------------------------------------------------------


async def test_if_match_with_the_current_version_writes(client: httpx.AsyncClient) -> None:
    await _put(client, "k", "one")
    response = await _put(client, "k", "two", **{"If-Match": "1"})
    assert (response.status_code, response.headers["etag"]) == (200, '"2"')


async def test_if_match_accepts_a_quoted_etag(client: httpx.AsyncClient) -> None:
    etag = (await _put(client, "k", "one")).headers["etag"]
    assert (await _put(client, "k", "two", **{"If-Match": etag})).status_code == 200


async def test_if_match_with_a_stale_version_is_412_and_writes_nothing(
    client: httpx.AsyncClient,
) -> None:
    await _put(client, "k", "one")
    await _put(client, "k", "two")
    response = await _put(client, "k", "three", **{"If-Match": '"1"'})
    assert response.status_code == 412
    assert response.json()["message"] == "Secret 'k' is at version 2, not version 1"
    assert await _value(client, "k") == "two"


async def test_if_match_zero_creates_only(client: httpx.AsyncClient) -> None:
    assert (await _put(client, "k", "one", **{"If-Match": "0"})).status_code == 200
    assert (await _put(client, "k", "two", **{"If-Match": "0"})).status_code == 412
    assert await _value(client, "k") == "one"


async def test_if_none_match_star_creates_only(client: httpx.AsyncClient) -> None:
    assert (await _put(client, "k", "one", **{"If-None-Match": "*"})).status_code == 200
    assert (await _put(client, "k", "two", **{"If-None-Match": "*"})).status_code == 412


async def test_if_match_on_a_missing_secret_is_412(client: httpx.AsyncClient) -> None:
    response = await _put(client, "k", "one", **{"If-Match": "3"})
    assert response.status_code == 412
    assert (await client.get("/api/secrets/k/exists")).json() is False


async def test_malformed_if_match_is_400(client: httpx.AsyncClient) -> None:
    assert (await _put(client, "k", "one", **{"If-Match": "latest"})).status_code == 400


async def test_get_carries_the_version_as_etag(client: httpx.AsyncClient) -> None:
    await _put(client, "k", "one")
    await _put(client, "k", "two")
    assert (await client.get("/api/secrets/k")).headers["etag"] == '"2"'


async def test_an_etag_from_a_deleted_secret_never_matches_its_successor(
    client: httpx.AsyncClient,
) -> None:
    old = (await _put(client, "k", "one")).headers["etag"]
    await client.delete("/api/secrets/k")
    await _put(client, "k", "new")
    assert (await _put(client, "k", "stale-write", **{"If-Match": old})).status_code == 412


# -- audit ------------------------------------------------------------------------------


async def test_audit_records_each_action_newest_first(client: httpx.AsyncClient) -> None:
    await _put(client, "k", "one")
    await _put(client, "k", "two")
    await client.get("/api/secrets/k")
    await client.post("/api/secrets/k/rollback")
    await client.delete("/api/secrets/k")
    assert await _actions(client, "k") == ["DELETE", "ROLLBACK", "READ", "UPDATE", "CREATE"]


async def test_audit_entries_name_who_when_and_which_version(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await _put(client, "k", "secret-one")
    entry = (await client.get("/api/secrets/k/audit")).json()[0]
    assert entry == {
        "id": entry["id"],
        "name": "k",
        "time": clock.now_ms(),
        "actor": "admin",
        "action": "CREATE",
        "version": 1,
        "workflowId": None,
        "detail": None,
    }


async def test_audit_never_holds_a_value(client: httpx.AsyncClient) -> None:
    await _put(client, "k", "secret-one")
    await _put(client, "k", "secret-two")
    await client.post("/api/secrets/k/rollback")
    text = (await client.get("/api/secrets/k/audit")).text
    assert "secret-one" not in text and "secret-two" not in text


async def test_audit_limit_keeps_the_newest(client: httpx.AsyncClient) -> None:
    for value in ("one", "two", "three"):
        await _put(client, "k", value)
    entries = (await client.get("/api/secrets/k/audit", params={"limit": 2})).json()
    assert [e["version"] for e in entries] == [3, 2]


async def test_audit_of_a_name_never_seen_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/secrets/never/audit")).status_code == 404


async def test_rejected_writes_leave_no_audit(client: httpx.AsyncClient) -> None:
    await _put(client, "k", "one")
    await _put(client, "k", "two", **{"If-Match": "7"})
    await _put(client, "k", "")
    assert await _actions(client, "k") == ["CREATE"]


async def test_audit_and_versions_need_secret_write(
    client: httpx.AsyncClient, anon_client: httpx.AsyncClient, token_for: TokenFor
) -> None:
    await _put(client, "k", "one")
    anon_client.headers["X-Authorization"] = await token_for(Role.USER)
    assert (await anon_client.get("/api/secrets/k/audit")).status_code == 403
    assert (await anon_client.get("/api/secrets/k/versions")).status_code == 403


# -- metadata ---------------------------------------------------------------------------


async def test_metadata_shows_rotation_times_and_authors(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    created = clock.now_ms()
    await _put(client, "k", "one")
    await client.put("/api/secrets/k/tags", json=[{"key": "env", "value": "prod"}])
    clock.advance(60_000)
    await _put(client, "k", "two")
    response = await client.get("/api/secrets/k/metadata")
    assert response.headers["etag"] == '"2"'
    assert response.json() == {
        "name": "k",
        "version": 2,
        "createTime": created,
        "updateTime": created + 60_000,
        "createdBy": "admin",
        "updatedBy": "admin",
        "lastRotatedTime": created + 60_000,
        "lastRotatedBy": "admin",
        "tags": [{"key": "env", "value": "prod"}],
    }


async def test_metadata_of_unknown_secret_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/secrets/missing/metadata")).status_code == 404


# -- grants -----------------------------------------------------------------------------


def _grant(app_id: str, name: str, *access: str, kind: str = "USER") -> Json:
    subject_id = f"app:{app_id}" if kind == "USER" else app_id
    return {
        "subject": {"type": kind, "id": subject_id},
        "target": {"type": "SECRET_NAME", "id": name},
        "access": list(access),
    }


async def _token_of(anon_client: httpx.AsyncClient, api_app: FastAPI, name: str) -> str:
    key_id, secret = await api_app.state.services.auth.create_key_for(name, [])
    response = await anon_client.post("/api/token", json={"keyId": key_id, "keySecret": secret})
    token: str = response.json()["token"]
    return token


async def test_a_read_grant_lets_an_application_read_that_secret_only(
    client: httpx.AsyncClient, anon_client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    await _put(client, "granted", "g-value")
    await _put(client, "other", "o-value")
    app_id = await _app_id(api_app, Role.USER, name="consumer")
    assert await client.post("/api/auth/authorization", json=_grant(app_id, "granted", "READ"))
    anon_client.headers["X-Authorization"] = await _token_of(anon_client, api_app, "consumer")
    assert (await anon_client.get("/api/secrets/granted")).text == "g-value"
    assert (await anon_client.get("/api/secrets/other")).status_code == 403
    assert (await anon_client.get("/api/secrets")).json() == ["granted"]


async def test_an_update_grant_allows_writing_but_not_deleting(
    client: httpx.AsyncClient, anon_client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    await _put(client, "k", "one")
    app_id = await _app_id(api_app, Role.USER, name="rotator")
    await client.post("/api/auth/authorization", json=_grant(app_id, "k", "UPDATE"))
    anon_client.headers["X-Authorization"] = await _token_of(anon_client, api_app, "rotator")
    assert (await _put(anon_client, "k", "two")).status_code == 200
    assert (await anon_client.delete("/api/secrets/k")).status_code == 403
    assert (await anon_client.get("/api/secrets/k")).status_code == 403


async def test_a_removed_grant_stops_working(
    client: httpx.AsyncClient, anon_client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    await _put(client, "k", "one")
    app_id = await _app_id(api_app, Role.USER, name="consumer")
    grant = _grant(app_id, "k", "READ")
    await client.post("/api/auth/authorization", json=grant)
    await client.request("DELETE", "/api/auth/authorization", json=grant)
    anon_client.headers["X-Authorization"] = await _token_of(anon_client, api_app, "consumer")
    assert (await anon_client.get("/api/secrets/k")).status_code == 403


async def test_grants_on_a_secret_are_listed_by_access(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    app_id = await _app_id(api_app, name="consumer")
    await client.post("/api/auth/authorization", json=_grant(app_id, "k", "READ", "UPDATE"))
    role_grant = _grant("WORKER", "k", "READ", kind="ROLE")
    await client.post("/api/auth/authorization", json=role_grant)
    listed = (await client.get("/api/auth/authorization/SECRET_NAME/k")).json()
    assert listed == {
        "READ": [{"type": "USER", "id": f"app:{app_id}"}, {"type": "ROLE", "id": "WORKER"}],
        "UPDATE": [{"type": "USER", "id": f"app:{app_id}"}],
    }


@pytest.mark.parametrize(
    "change",
    [
        {"target": {"type": "WORKFLOW_DEF", "id": "k"}},
        {"access": ["PEEK"]},
        {"subject": {"type": "GROUP", "id": "g"}},
        {"subject": {"type": "USER", "id": "app:no-such-app"}},
    ],
    ids=["target-type", "access", "subject-type", "unknown-app"],
)
async def test_bad_grant_requests_are_4xx(client: httpx.AsyncClient, change: Json) -> None:
    body = {**_grant("x", "k", "READ"), **change}
    response = await client.post("/api/auth/authorization", json=body)
    assert response.status_code in (400, 404)


async def test_only_admin_manages_grants(
    anon_client: httpx.AsyncClient, token_for: TokenFor
) -> None:
    anon_client.headers["X-Authorization"] = await token_for(Role.METADATA_MANAGER)
    body = _grant("x", "k", "READ", kind="ROLE")
    response = await anon_client.post("/api/auth/authorization", json=body)
    assert response.status_code == 403


# -- the engine's calls -----------------------------------------------------------------


async def test_resolve_returns_the_readable_existing_values(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    await _put(client, "a", "va")
    await _put(client, "b", "vb")
    admin_id = await _app_id(api_app, Role.ADMIN)
    values = await _service(api_app).resolve_for_workflow(["a", "b", "missing"], admin_id, "wf-1")
    assert values == {"a": "va", "b": "vb"}


async def test_resolve_without_read_leaves_names_out_and_audits_the_denial(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    await _put(client, "a", "va")
    user_id = await _app_id(api_app, Role.USER)
    assert await _service(api_app).resolve_for_workflow(["a"], user_id, "wf-1") == {}
    entry = (await client.get("/api/secrets/a/audit")).json()[0]
    assert (entry["action"], entry["actor"], entry["workflowId"]) == (
        "RESOLVE_DENIED",
        user_id,
        "wf-1",
    )


async def test_resolve_honours_a_read_grant(client: httpx.AsyncClient, api_app: FastAPI) -> None:
    await _put(client, "a", "va")
    user_id = await _app_id(api_app, Role.USER)
    await client.post("/api/auth/authorization", json=_grant(user_id, "a", "READ"))
    assert await _service(api_app).resolve_for_workflow(["a"], user_id, "wf-1") == {"a": "va"}


@pytest.mark.parametrize("run_as", [None, "anonymous"])
async def test_resolve_for_a_workflow_started_by_nobody_known_is_denied(
    client: httpx.AsyncClient, api_app: FastAPI, run_as: str | None
) -> None:
    """With authentication on, a workflow without a known starter (an event handler's,
    or one started while authentication was off) reads no secret."""
    await _put(client, "a", "va")
    assert await _service(api_app).resolve_for_workflow(["a"], run_as, "wf-1") == {}


async def test_resolve_for_a_deleted_application_yields_nothing(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    await _put(client, "a", "va")
    assert await _service(api_app).resolve_for_workflow(["a"], "no-such-app", "wf-1") == {}


async def test_resolve_audits_one_row_per_name(client: httpx.AsyncClient, api_app: FastAPI) -> None:
    await _put(client, "a", "va")
    admin_id = await _app_id(api_app, Role.ADMIN)
    await _service(api_app).resolve_for_workflow(["a", "a"], admin_id, "wf-7")
    entries = (await client.get("/api/secrets/a/audit")).json()
    assert [(e["action"], e["workflowId"]) for e in entries] == [
        ("RESOLVE", "wf-7"),
        ("CREATE", None),
    ]


async def test_write_from_workflow_adds_a_version_written_by_the_workflow(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    await _put(client, "token", "old")
    admin_id = await _app_id(api_app, Role.ADMIN)
    version = await _service(api_app).write_from_workflow("token", "fresh", admin_id, "wf-9")
    assert version == 2
    assert await _value(client, "token") == "fresh"
    latest = (await client.get("/api/secrets/token/versions")).json()[0]
    assert (latest["writtenBy"], latest["workflowId"]) == ("workflow:wf-9", "wf-9")
    metadata = (await client.get("/api/secrets/token/metadata")).json()
    assert metadata["lastRotatedBy"] == "workflow:wf-9"
    assert (await _actions(client, "token"))[:3] == ["READ", "WRITE", "CREATE"]


async def test_write_from_workflow_needs_secret_write_or_an_update_grant(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    await _put(client, "token", "old")
    user_id = await _app_id(api_app, Role.USER)
    service = _service(api_app)
    with pytest.raises(Forbidden) as denied:
        await service.write_from_workflow("token", "new-value", user_id, "wf-1")
    assert "new-value" not in denied.value.message
    await client.post("/api/auth/authorization", json=_grant(user_id, "token", "UPDATE"))
    assert await service.write_from_workflow("token", "new-value", user_id, "wf-1") == 2


async def test_metadata_manager_workflow_may_create_a_secret(api_app: FastAPI) -> None:
    manager_id = await _app_id(api_app, Role.METADATA_MANAGER)
    assert await _service(api_app).write_from_workflow("fresh", "v", manager_id, "wf-1") == 1


@pytest.mark.parametrize(
    ("name", "value"),
    [("bad.name", "the-value"), ("k", ""), ("k", "x" * 70_000)],
    ids=["name", "empty", "oversize"],
)
async def test_write_from_workflow_rejects_bad_input_without_the_value(
    api_app: FastAPI, name: str, value: str
) -> None:
    with pytest.raises(BadRequest) as bad:
        await _service(api_app).write_from_workflow(name, value, None, "wf-1")
    assert not value or value[:20] not in bad.value.message


async def test_failed_rotation_is_audited(client: httpx.AsyncClient, api_app: FastAPI) -> None:
    await _put(client, "token", "old")
    await _service(api_app).record_failed_rotation("token", "app-1", "wf-3", "403: no UPDATE")
    entry = (await client.get("/api/secrets/token/audit")).json()[0]
    assert (entry["action"], entry["workflowId"], entry["detail"]) == (
        "ROTATION_FAILED",
        "wf-3",
        "403: no UPDATE",
    )


async def test_known_values_cover_current_and_kept_versions_only(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    await _put(client, "a", "a-one")
    await _put(client, "a", "a-two")
    await _put(client, "b", "b-one")
    service = _service(api_app)
    assert sorted(await service.known_values()) == ["a-one", "a-two", "b-one"]
    await client.delete("/api/secrets/b")
    assert sorted(await service.known_values()) == ["a-one", "a-two"]


async def test_on_change_is_called_after_each_value_change(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    calls: list[int] = []
    _service(api_app).on_change = lambda: calls.append(1)
    await _put(client, "k", "one")
    await _put(client, "k", "two")
    await client.post("/api/secrets/k/rollback")
    await client.get("/api/secrets/k")
    await client.delete("/api/secrets/k")
    assert len(calls) == 4
