"""POST /api/token and GET /api/token/userInfo, as Orkes answers them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import jwt
from fastapi import FastAPI

from app.auth.permissions import Role
from app.clock import ManualClock
from app.config import Settings
from app.main import create_app
from tests.conftest import ADMIN_KEY_ID, ADMIN_KEY_SECRET, asgi_client


@asynccontextmanager
async def running(settings: Settings, clock: ManualClock) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app), asgi_client(app) as client:
        yield client


async def _new_key(api_app: FastAPI, *roles: Role) -> tuple[str, str]:
    key_id, secret = await api_app.state.services.auth.create_key_for("ci", list(roles))
    return key_id, secret


async def _token(
    client: httpx.AsyncClient, key_id: str, secret: str, **extra: object
) -> httpx.Response:
    return await client.post("/api/token", json={"keyId": key_id, "keySecret": secret, **extra})


def _claims(token: str) -> dict[str, object]:
    claims: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return claims


async def test_a_valid_key_gets_a_token(anon_client: httpx.AsyncClient) -> None:
    response = await _token(anon_client, ADMIN_KEY_ID, ADMIN_KEY_SECRET)
    assert response.status_code == 200
    assert set(response.json()) == {"token"}


async def test_token_carries_the_application_and_its_roles(
    anon_client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    key_id, secret = await _new_key(api_app, Role.WORKER, Role.USER)
    claims = _claims((await _token(anon_client, key_id, secret)).json()["token"])
    app = (
        await anon_client.get(f"/api/applications/key/{key_id}", headers=await _admin(anon_client))
    ).json()
    assert claims["sub"] == app["id"]
    assert claims["keyId"] == key_id
    assert claims["roles"] == ["USER", "WORKER"]


async def test_token_lives_two_hours_by_default(anon_client: httpx.AsyncClient) -> None:
    claims = _claims((await _token(anon_client, ADMIN_KEY_ID, ADMIN_KEY_SECRET)).json()["token"])
    assert claims["exp"] - claims["iat"] == 7200  # type: ignore[operator]


async def test_token_lifetime_follows_the_setting(settings: Settings, clock: ManualClock) -> None:
    async with running(settings.model_copy(update={"token_ttl_seconds": 3600}), clock) as client:
        token = (await _token(client, ADMIN_KEY_ID, ADMIN_KEY_SECRET)).json()["token"]
    claims = _claims(token)
    assert claims["exp"] - claims["iat"] == 3600  # type: ignore[operator]


async def test_requested_expiration_shortens_the_lifetime(anon_client: httpx.AsyncClient) -> None:
    response = await _token(anon_client, ADMIN_KEY_ID, ADMIN_KEY_SECRET, expiration=60_000)
    claims = _claims(response.json()["token"])
    assert claims["exp"] - claims["iat"] == 60  # type: ignore[operator]


async def test_requested_expiration_cannot_exceed_the_setting(
    anon_client: httpx.AsyncClient,
) -> None:
    day_ms = 24 * 3600 * 1000
    response = await _token(anon_client, ADMIN_KEY_ID, ADMIN_KEY_SECRET, expiration=day_ms)
    claims = _claims(response.json()["token"])
    assert claims["exp"] - claims["iat"] == 7200  # type: ignore[operator]


async def test_a_token_without_expiry_is_refused(anon_client: httpx.AsyncClient) -> None:
    response = await _token(anon_client, ADMIN_KEY_ID, ADMIN_KEY_SECRET, expiration=-1)
    assert response.status_code == 400
    assert response.json()["validationErrors"][0]["path"] == "expiration"


async def test_wrong_secret_is_401_without_a_token_error_code(
    anon_client: httpx.AsyncClient,
) -> None:
    response = await _token(anon_client, ADMIN_KEY_ID, "wrong-secret")
    assert response.status_code == 401
    body = response.json()
    # No INVALID_TOKEN here: the clients would answer it by asking /api/token again, forever.
    assert "error" not in body
    assert body["message"] == "Invalid access key id or secret"
    assert body["status"] == 401


async def test_unknown_key_id_gets_the_same_answer_as_a_wrong_secret(
    anon_client: httpx.AsyncClient,
) -> None:
    unknown = await _token(anon_client, "no-such-key", "whatever")
    wrong = await _token(anon_client, ADMIN_KEY_ID, "whatever")
    assert (unknown.status_code, unknown.json()["message"]) == (
        wrong.status_code,
        wrong.json()["message"],
    )


async def test_an_inactive_key_gets_no_token(
    anon_client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    key_id, secret = await _new_key(api_app, Role.USER)
    app_id = (await api_app.state.services.auth.application_by_key(key_id))["id"]
    await api_app.state.services.auth.toggle_access_key(app_id, key_id)
    response = await _token(anon_client, key_id, secret)
    assert (response.status_code, response.json()["message"]) == (401, "The access key is inactive")


async def test_a_reactivated_key_gets_a_token_again(
    anon_client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    auth = api_app.state.services.auth
    key_id, secret = await _new_key(api_app, Role.USER)
    app_id = (await auth.application_by_key(key_id))["id"]
    await auth.toggle_access_key(app_id, key_id)
    await auth.toggle_access_key(app_id, key_id)
    assert (await _token(anon_client, key_id, secret)).status_code == 200


async def test_a_deleted_key_gets_no_token(
    anon_client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    auth = api_app.state.services.auth
    key_id, secret = await _new_key(api_app, Role.USER)
    await auth.delete_access_key((await auth.application_by_key(key_id))["id"], key_id)
    assert (await _token(anon_client, key_id, secret)).status_code == 401


async def test_missing_key_secret_is_400(anon_client: httpx.AsyncClient) -> None:
    response = await anon_client.post("/api/token", json={"keyId": ADMIN_KEY_ID})
    assert response.status_code == 400
    assert response.json()["validationErrors"][0]["path"] == "keySecret"


async def test_malformed_json_is_400(anon_client: httpx.AsyncClient) -> None:
    response = await anon_client.post(
        "/api/token", content=b'{"keyId": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith("Malformed JSON")


async def test_wrong_types_are_400(anon_client: httpx.AsyncClient) -> None:
    response = await anon_client.post("/api/token", json={"keyId": 5, "keySecret": ["x"]})
    assert response.status_code == 400
    paths = {e["path"] for e in response.json()["validationErrors"]}
    assert paths == {"keyId", "keySecret"}


async def test_token_endpoint_ignores_a_stale_token_header(anon_client: httpx.AsyncClient) -> None:
    response = await anon_client.post(
        "/api/token",
        json={"keyId": ADMIN_KEY_ID, "keySecret": ADMIN_KEY_SECRET},
        headers={"X-Authorization": "expired-or-garbage"},
    )
    assert response.status_code == 200


# -- brute force ------------------------------------------------------------------------


async def test_repeated_wrong_secrets_lock_the_key_id_out_with_429(
    anon_client: httpx.AsyncClient,
) -> None:
    for _ in range(5):
        assert (await _token(anon_client, ADMIN_KEY_ID, "guess")).status_code == 401
    # Even the right secret is refused while the key id is locked.
    locked = await _token(anon_client, ADMIN_KEY_ID, ADMIN_KEY_SECRET)
    assert locked.status_code == 429
    assert locked.json()["status"] == 429
    assert "error" not in locked.json()


async def test_the_lockout_ends_after_a_minute(
    anon_client: httpx.AsyncClient, clock: ManualClock
) -> None:
    for _ in range(5):
        await _token(anon_client, ADMIN_KEY_ID, "guess")
    clock.advance(60_000)
    assert (await _token(anon_client, ADMIN_KEY_ID, ADMIN_KEY_SECRET)).status_code == 200


async def test_a_success_clears_earlier_failures(anon_client: httpx.AsyncClient) -> None:
    for _ in range(4):
        await _token(anon_client, ADMIN_KEY_ID, "guess")
    assert (await _token(anon_client, ADMIN_KEY_ID, ADMIN_KEY_SECRET)).status_code == 200
    for _ in range(4):
        await _token(anon_client, ADMIN_KEY_ID, "guess")
    assert (await _token(anon_client, ADMIN_KEY_ID, ADMIN_KEY_SECRET)).status_code == 200


async def test_a_locked_key_id_does_not_lock_other_keys(
    anon_client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    key_id, secret = await _new_key(api_app, Role.USER)
    for _ in range(6):
        await _token(anon_client, ADMIN_KEY_ID, "guess")
    assert (await _token(anon_client, key_id, secret)).status_code == 200


# -- userInfo ---------------------------------------------------------------------------


async def _admin(client: httpx.AsyncClient) -> dict[str, str]:
    token = (await _token(client, ADMIN_KEY_ID, ADMIN_KEY_SECRET)).json()["token"]
    return {"X-Authorization": token}


async def test_user_info_names_the_application_and_its_roles_with_permissions(
    anon_client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    key_id, secret = await _new_key(api_app, Role.WORKER)
    token = (await _token(anon_client, key_id, secret)).json()["token"]
    info = (await anon_client.get("/api/token/userInfo", headers={"X-Authorization": token})).json()
    assert info["name"] == "ci"
    assert info["applicationUser"] is True
    assert info["id"] == _claims(token)["sub"]
    assert info["roles"] == [
        {"name": "WORKER", "permissions": [{"name": "TASK_DEF_READ"}, {"name": "TASK_WORK"}]}
    ]


async def test_user_info_with_claims_wraps_user_and_claims(
    anon_client: httpx.AsyncClient,
) -> None:
    headers = await _admin(anon_client)
    body = (await anon_client.get("/api/token/userInfo?claims=true", headers=headers)).json()
    assert set(body) == {"user", "claims"}
    assert body["claims"]["keyId"] == ADMIN_KEY_ID
    assert body["user"]["name"] == "admin"


async def test_user_info_with_a_non_boolean_claims_flag_is_400(
    anon_client: httpx.AsyncClient,
) -> None:
    headers = await _admin(anon_client)
    response = await anon_client.get("/api/token/userInfo?claims=maybe", headers=headers)
    assert response.status_code == 400
    assert response.json()["validationErrors"][0]["path"] == "query.claims"


async def test_user_info_needs_a_token(anon_client: httpx.AsyncClient) -> None:
    assert (await anon_client.get("/api/token/userInfo")).status_code == 401


async def test_an_application_without_roles_may_still_ask_who_it_is(
    anon_client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    key_id, secret = await _new_key(api_app)
    headers = {"X-Authorization": (await _token(anon_client, key_id, secret)).json()["token"]}
    assert (await anon_client.get("/api/token/userInfo", headers=headers)).status_code == 200
    assert (await anon_client.get("/api/metadata/taskdefs", headers=headers)).status_code == 403


# -- auth disabled ----------------------------------------------------------------------


async def test_with_auth_disabled_the_token_endpoint_is_404(
    settings: Settings, clock: ManualClock
) -> None:
    async with running(settings.model_copy(update={"auth_enabled": False}), clock) as client:
        response = await _token(client, ADMIN_KEY_ID, ADMIN_KEY_SECRET)
    assert response.status_code == 404


async def test_with_auth_disabled_the_token_endpoint_is_404_whatever_the_body(
    settings: Settings, clock: ManualClock
) -> None:
    async with running(settings.model_copy(update={"auth_enabled": False}), clock) as client:
        response = await client.post("/api/token", json={})
    assert response.status_code == 404


async def test_with_auth_disabled_user_info_is_the_anonymous_admin(
    settings: Settings, clock: ManualClock
) -> None:
    async with running(settings.model_copy(update={"auth_enabled": False}), clock) as client:
        info = (await client.get("/api/token/userInfo")).json()
    assert (info["id"], info["applicationUser"]) == ("anonymous", False)
    assert [r["name"] for r in info["roles"]] == ["ADMIN"]
