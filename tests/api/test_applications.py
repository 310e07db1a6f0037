"""/api/applications: applications, roles and access keys (Orkes' ApplicationResource)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from app.store.db import Database
from app.store.tables import access_keys
from tests.conftest import TokenFor

Json = dict[str, Any]


async def _create(client: httpx.AsyncClient, name: str = "ci") -> Json:
    response = await client.post("/api/applications", json={"name": name})
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


async def _key(client: httpx.AsyncClient, app_id: str) -> Json:
    response = await client.post(f"/api/applications/{app_id}/accessKeys")
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


async def _token(client: httpx.AsyncClient, key: Json) -> httpx.Response:
    return await client.post(
        "/api/token",
        json={"keyId": key["id"], "keySecret": key["secret"]},
        headers={"X-Authorization": "none"},  # sent as is: no admin token
    )


async def _names(client: httpx.AsyncClient) -> list[str]:
    return [a["name"] for a in (await client.get("/api/applications")).json()]


# -- applications -----------------------------------------------------------------------


async def test_create_returns_the_application_in_orkes_shape(client: httpx.AsyncClient) -> None:
    app = await _create(client)
    assert set(app) == {"id", "name", "createdBy", "updatedBy", "createTime", "updateTime", "roles"}
    assert (app["name"], app["createdBy"], app["roles"]) == ("ci", "admin", [])


async def test_created_application_can_be_read_back(client: httpx.AsyncClient) -> None:
    app = await _create(client)
    assert (await client.get(f"/api/applications/{app['id']}")).json() == app


async def test_list_includes_every_application(client: httpx.AsyncClient) -> None:
    await _create(client, "one")
    await _create(client, "two")
    assert await _names(client) == ["admin", "one", "two"]


async def test_put_renames_an_application(client: httpx.AsyncClient, clock: Any) -> None:
    app = await _create(client)
    clock.advance(1000)
    renamed = (await client.put(f"/api/applications/{app['id']}", json={"name": "cd"})).json()
    assert renamed["name"] == "cd"
    assert renamed["updateTime"] == app["updateTime"] + 1000


async def test_duplicate_name_is_409(client: httpx.AsyncClient) -> None:
    await _create(client)
    response = await client.post("/api/applications", json={"name": "ci"})
    assert response.status_code == 409
    assert response.json()["message"] == "Application with name 'ci' already exists"


async def test_rename_to_a_taken_name_is_409_and_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    app = await _create(client, "one")
    await _create(client, "two")
    response = await client.put(f"/api/applications/{app['id']}", json={"name": "two"})
    assert response.status_code == 409
    assert await _names(client) == ["admin", "one", "two"]


@pytest.mark.parametrize(
    "body",
    [{}, {"name": ""}, {"name": "   "}, {"name": 5}, {"name": "x" * 256}, [{"name": "x"}]],
)
async def test_bad_application_bodies_are_400_and_write_nothing(
    client: httpx.AsyncClient, body: object
) -> None:
    response = await client.post("/api/applications", json=body)
    assert response.status_code == 400
    assert response.json()["validationErrors"]
    assert await _names(client) == ["admin"]


@pytest.mark.parametrize("body", [{}, {"name": " "}, {"name": None}, "ci"])
async def test_bad_rename_bodies_are_400_and_change_nothing(
    client: httpx.AsyncClient, body: object
) -> None:
    app = await _create(client)
    response = await client.put(f"/api/applications/{app['id']}", json=body)
    assert response.status_code == 400
    assert (await client.get(f"/api/applications/{app['id']}")).json() == app


async def test_malformed_json_is_400_and_writes_nothing(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/applications", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert await _names(client) == ["admin"]


async def test_delete_removes_the_application(client: httpx.AsyncClient) -> None:
    app = await _create(client)
    response = await client.delete(f"/api/applications/{app['id']}")
    assert response.json() == {"message": f"Deleted Application '{app['id']}'"}
    assert (await client.get(f"/api/applications/{app['id']}")).status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/applications/nope"),
        ("PUT", "/api/applications/nope"),
        ("DELETE", "/api/applications/nope"),
        ("POST", "/api/applications/nope/roles/USER"),
        ("DELETE", "/api/applications/nope/roles/USER"),
        ("POST", "/api/applications/nope/accessKeys"),
        ("GET", "/api/applications/nope/accessKeys"),
    ],
)
async def test_unknown_application_is_404(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path, json={"name": "x"})
    assert response.status_code == 404
    assert response.json()["message"] == "Application 'nope' not found"


# -- roles ------------------------------------------------------------------------------


async def test_add_role_gives_the_application_that_role(client: httpx.AsyncClient) -> None:
    app = await _create(client)
    response = await client.post(f"/api/applications/{app['id']}/roles/METADATA_MANAGER")
    assert response.status_code == 200
    assert response.json()["roles"] == ["METADATA_MANAGER"]


async def test_adding_a_role_twice_keeps_one(client: httpx.AsyncClient) -> None:
    app = await _create(client)
    await client.post(f"/api/applications/{app['id']}/roles/USER")
    second = await client.post(f"/api/applications/{app['id']}/roles/USER")
    assert second.json()["roles"] == ["USER"]


async def test_remove_role_takes_it_away(client: httpx.AsyncClient) -> None:
    app = await _create(client)
    await client.post(f"/api/applications/{app['id']}/roles/USER")
    response = await client.delete(f"/api/applications/{app['id']}/roles/USER")
    assert response.json()["roles"] == []


async def test_unknown_role_is_400_and_changes_nothing(client: httpx.AsyncClient) -> None:
    app = await _create(client)
    response = await client.post(f"/api/applications/{app['id']}/roles/SUPERUSER")
    assert response.status_code == 400
    assert "Unknown role 'SUPERUSER'" in response.json()["message"]
    assert (await client.get(f"/api/applications/{app['id']}")).json()["roles"] == []


async def test_a_new_role_takes_effect_on_the_next_request_with_the_same_token(
    client: httpx.AsyncClient,
) -> None:
    app = await _create(client)
    token = (await _token(client, await _key(client, app["id"]))).json()["token"]
    headers = {"X-Authorization": token}
    assert (await client.get("/api/metadata/taskdefs", headers=headers)).status_code == 403
    await client.post(f"/api/applications/{app['id']}/roles/USER")
    assert (await client.get("/api/metadata/taskdefs", headers=headers)).status_code == 200


async def test_a_removed_role_stops_working_on_the_next_request(
    client: httpx.AsyncClient,
) -> None:
    app = await _create(client)
    await client.post(f"/api/applications/{app['id']}/roles/METADATA_MANAGER")
    headers = {
        "X-Authorization": (await _token(client, await _key(client, app["id"]))).json()["token"]
    }
    write = {"name": "t"}
    assert (
        await client.post("/api/metadata/taskdefs", json=[write], headers=headers)
    ).status_code == 200
    await client.delete(f"/api/applications/{app['id']}/roles/METADATA_MANAGER")
    assert (
        await client.post("/api/metadata/taskdefs", json=[write], headers=headers)
    ).status_code == 403


# -- access keys ------------------------------------------------------------------------


async def test_create_access_key_returns_id_and_secret(client: httpx.AsyncClient) -> None:
    key = await _key(client, (await _create(client))["id"])
    assert set(key) == {"id", "secret"}
    assert len(key["secret"]) >= 43


async def test_listed_access_keys_never_show_the_secret(client: httpx.AsyncClient) -> None:
    app = await _create(client)
    key = await _key(client, app["id"])
    listed = (await client.get(f"/api/applications/{app['id']}/accessKeys")).json()
    assert [set(k) for k in listed] == [{"id", "createdAt", "status"}]
    assert listed[0]["id"] == key["id"] and listed[0]["status"] == "ACTIVE"
    assert key["secret"] not in str(listed)


async def test_the_secret_is_stored_only_as_a_salted_hash(
    client: httpx.AsyncClient, db: Database
) -> None:
    key = await _key(client, (await _create(client))["id"])
    async with db.read() as conn:
        stored = await conn.scalar(
            sa.select(access_keys.c.secret_hash).where(access_keys.c.id == key["id"])
        )
    assert isinstance(stored, str)
    assert stored.startswith("scrypt$")
    assert key["secret"] not in stored


async def test_a_new_key_gets_a_token(client: httpx.AsyncClient) -> None:
    key = await _key(client, (await _create(client))["id"])
    assert (await _token(client, key)).status_code == 200


async def test_toggle_switches_a_key_between_active_and_inactive(
    client: httpx.AsyncClient,
) -> None:
    app = await _create(client)
    key = await _key(client, app["id"])
    path = f"/api/applications/{app['id']}/accessKeys/{key['id']}/status"
    first = (await client.post(path)).json()
    assert set(first) == {"id", "createdAt", "status"}
    assert first["status"] == "INACTIVE"
    assert (await client.post(path)).json()["status"] == "ACTIVE"


async def test_an_inactive_keys_tokens_stop_working(client: httpx.AsyncClient) -> None:
    app = await _create(client)
    await client.post(f"/api/applications/{app['id']}/roles/USER")
    key = await _key(client, app["id"])
    headers = {"X-Authorization": (await _token(client, key)).json()["token"]}
    await client.post(f"/api/applications/{app['id']}/accessKeys/{key['id']}/status")
    response = await client.get("/api/metadata/taskdefs", headers=headers)
    assert (response.status_code, response.json()["error"]) == (401, "INVALID_TOKEN")


async def test_delete_access_key_removes_it(client: httpx.AsyncClient) -> None:
    app = await _create(client)
    key = await _key(client, app["id"])
    response = await client.delete(f"/api/applications/{app['id']}/accessKeys/{key['id']}")
    assert response.json() == {"message": f"Deleted Access key '{key['id']}'"}
    assert (await client.get(f"/api/applications/{app['id']}/accessKeys")).json() == []
    assert (await _token(client, key)).status_code == 401


async def test_a_deleted_keys_tokens_stop_working(client: httpx.AsyncClient) -> None:
    app = await _create(client)
    await client.post(f"/api/applications/{app['id']}/roles/USER")
    key = await _key(client, app["id"])
    headers = {"X-Authorization": (await _token(client, key)).json()["token"]}
    await client.delete(f"/api/applications/{app['id']}/accessKeys/{key['id']}")
    assert (await client.get("/api/metadata/taskdefs", headers=headers)).status_code == 401


@pytest.mark.parametrize("method", ["POST", "DELETE"])
async def test_a_key_of_another_application_is_404(client: httpx.AsyncClient, method: str) -> None:
    one = await _create(client, "one")
    two = await _create(client, "two")
    key = await _key(client, one["id"])
    suffix = "/status" if method == "POST" else ""
    response = await client.request(
        method, f"/api/applications/{two['id']}/accessKeys/{key['id']}{suffix}"
    )
    assert response.status_code == 404
    assert response.json()["message"] == f"Access key '{key['id']}' not found"
    assert (await client.get(f"/api/applications/{one['id']}/accessKeys")).json()[0][
        "status"
    ] == "ACTIVE"


async def test_application_by_key_finds_the_owner(client: httpx.AsyncClient) -> None:
    app = await _create(client)
    key = await _key(client, app["id"])
    assert (await client.get(f"/api/applications/key/{key['id']}")).json()["id"] == app["id"]


async def test_application_by_unknown_key_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/applications/key/nope")).status_code == 404


async def test_deleting_an_application_stops_its_tokens_at_once(
    client: httpx.AsyncClient,
) -> None:
    app = await _create(client)
    await client.post(f"/api/applications/{app['id']}/roles/USER")
    key = await _key(client, app["id"])
    headers = {"X-Authorization": (await _token(client, key)).json()["token"]}
    assert (await client.get("/api/metadata/taskdefs", headers=headers)).status_code == 200
    await client.delete(f"/api/applications/{app['id']}")
    response = await client.get("/api/metadata/taskdefs", headers=headers)
    assert (response.status_code, response.json()["error"]) == (401, "INVALID_TOKEN")


async def test_deleting_an_application_deletes_its_keys(client: httpx.AsyncClient) -> None:
    app = await _create(client)
    key = await _key(client, app["id"])
    await client.delete(f"/api/applications/{app['id']}")
    assert (await client.get(f"/api/applications/key/{key['id']}")).status_code == 404
    assert (await _token(client, key)).status_code == 401


# -- who may manage applications --------------------------------------------------------


async def test_a_non_admin_cannot_manage_applications(
    anon_client: httpx.AsyncClient, token_for: TokenFor
) -> None:
    from app.auth.permissions import Role

    token = await token_for(Role.METADATA_MANAGER, Role.WORKFLOW_MANAGER, Role.USER)
    response = await anon_client.post(
        "/api/applications", json={"name": "x"}, headers={"X-Authorization": token}
    )
    assert response.status_code == 403
    assert "APPLICATION_MANAGE" in response.json()["message"]
