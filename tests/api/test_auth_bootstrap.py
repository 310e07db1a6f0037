"""Start-up: the first admin application, env-seeded admin keys, and the signing key several
processes on one database share."""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from app.clock import ManualClock
from app.config import Settings
from app.errors import ConfigError
from app.main import create_app
from tests.conftest import ADMIN_KEY_ID, ADMIN_KEY_SECRET, asgi_client


@pytest.fixture
def bare_settings(database_url: str, tmp_path: Path) -> Settings:
    """No admin key in the environment: the first start generates one."""
    return Settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        instance_id="test-instance",
        background_enabled=False,
    )


@asynccontextmanager
async def running(settings: Settings, clock: ManualClock) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app), asgi_client(app) as client:
        yield client


async def _token(client: httpx.AsyncClient, key_id: str, secret: str) -> httpx.Response:
    return await client.post("/api/token", json={"keyId": key_id, "keySecret": secret})


def _key_file(settings: Settings) -> Path:
    return settings.data_dir / "admin-key.json"


async def test_first_start_writes_an_admin_key_file_readable_by_the_owner_only(
    bare_settings: Settings, clock: ManualClock
) -> None:
    async with running(bare_settings, clock):
        pass
    mode = stat.S_IMODE(_key_file(bare_settings).stat().st_mode)
    assert mode == 0o600


async def test_the_generated_admin_key_gets_an_admin_token(
    bare_settings: Settings, clock: ManualClock
) -> None:
    async with running(bare_settings, clock) as client:
        key = json.loads(_key_file(bare_settings).read_text())
        token = (await _token(client, key["keyId"], key["keySecret"])).json()["token"]
        info = (await client.get("/api/token/userInfo", headers={"X-Authorization": token})).json()
    assert info["name"] == "admin"
    assert [r["name"] for r in info["roles"]] == ["ADMIN"]


async def test_the_log_names_the_key_file_but_never_the_secret(
    bare_settings: Settings, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="baton.auth"):
        async with running(bare_settings, clock):
            pass
    secret = json.loads(_key_file(bare_settings).read_text())["keySecret"]
    assert str(_key_file(bare_settings)) in caplog.text
    assert secret not in caplog.text


async def test_a_restart_keeps_the_first_admin_and_its_file(
    bare_settings: Settings, clock: ManualClock
) -> None:
    async with running(bare_settings, clock):
        pass
    first = _key_file(bare_settings).read_text()
    async with running(bare_settings, clock) as client:
        key = json.loads(first)
        token = (await _token(client, key["keyId"], key["keySecret"])).json()["token"]
        apps = (await client.get("/api/applications", headers={"X-Authorization": token})).json()
    assert _key_file(bare_settings).read_text() == first
    assert [a["name"] for a in apps] == ["admin"]


async def test_no_admin_is_generated_when_an_application_exists(
    settings: Settings, bare_settings: Settings, clock: ManualClock
) -> None:
    async with running(settings, clock):  # seeds the env admin key
        pass
    async with running(bare_settings, clock):
        pass
    assert not _key_file(bare_settings).exists()


async def test_an_unwritable_data_dir_fails_start_up_and_creates_no_application(
    bare_settings: Settings, settings: Settings, clock: ManualClock, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    broken = bare_settings.model_copy(update={"data_dir": blocker / "data"})
    with pytest.raises(ConfigError, match="cannot write the admin access key"):
        async with running(broken, clock):
            pass
    async with running(bare_settings, clock):  # a later good start still bootstraps
        pass
    assert _key_file(bare_settings).exists()


async def test_env_admin_key_is_seeded_without_a_key_file(
    settings: Settings, clock: ManualClock
) -> None:
    async with running(settings, clock) as client:
        response = await _token(client, ADMIN_KEY_ID, ADMIN_KEY_SECRET)
    assert response.status_code == 200
    assert not _key_file(settings).exists()


async def test_a_changed_env_admin_secret_replaces_the_old_one(
    settings: Settings, clock: ManualClock
) -> None:
    async with running(settings, clock):
        pass
    rotated = settings.model_copy(
        update={"admin_key_secret": SecretStr("a-brand-new-secret-value")}
    )
    async with running(rotated, clock) as client:
        assert (await _token(client, ADMIN_KEY_ID, ADMIN_KEY_SECRET)).status_code == 401
        assert (await _token(client, ADMIN_KEY_ID, "a-brand-new-secret-value")).status_code == 200


async def test_with_auth_disabled_nothing_is_bootstrapped(
    bare_settings: Settings, clock: ManualClock
) -> None:
    disabled = bare_settings.model_copy(update={"auth_enabled": False})
    async with running(disabled, clock) as client:
        apps = (await client.get("/api/applications")).json()
    assert apps == []
    assert not _key_file(bare_settings).exists()


# -- several processes on one database --------------------------------------------------


async def test_processes_on_one_database_accept_each_others_tokens(
    settings: Settings, clock: ManualClock
) -> None:
    async with running(settings, clock) as one, running(settings, clock) as two:
        token = (await _token(one, ADMIN_KEY_ID, ADMIN_KEY_SECRET)).json()["token"]
        response = await two.get("/api/metadata/taskdefs", headers={"X-Authorization": token})
    assert response.status_code == 200


async def test_another_process_drops_a_deleted_applications_tokens_within_seconds(
    settings: Settings, clock: ManualClock
) -> None:
    async with running(settings, clock) as one, running(settings, clock) as two:
        admin = {
            "X-Authorization": (await _token(one, ADMIN_KEY_ID, ADMIN_KEY_SECRET)).json()["token"]
        }
        app = (await one.post("/api/applications", json={"name": "ci"}, headers=admin)).json()
        await one.post(f"/api/applications/{app['id']}/roles/USER", headers=admin)
        key = (await one.post(f"/api/applications/{app['id']}/accessKeys", headers=admin)).json()
        token = (await _token(one, key["id"], key["secret"])).json()["token"]
        headers = {"X-Authorization": token}
        assert (await two.get("/api/metadata/taskdefs", headers=headers)).status_code == 200

        await one.delete(f"/api/applications/{app['id']}", headers=admin)
        assert (await one.get("/api/metadata/taskdefs", headers=headers)).status_code == 401
        clock.advance(5_000)  # the other process's cache lives at most this long
        assert (await two.get("/api/metadata/taskdefs", headers=headers)).status_code == 401


async def test_a_configured_signing_key_replaces_the_stored_one(
    settings: Settings, clock: ManualClock
) -> None:
    configured = settings.model_copy(
        update={"token_signing_key": SecretStr("a-configured-signing-key-of-32-bytes!")}
    )
    async with running(settings, clock) as stored, running(configured, clock) as custom:
        token = (await _token(stored, ADMIN_KEY_ID, ADMIN_KEY_SECRET)).json()["token"]
        response = await custom.get("/api/metadata/taskdefs", headers={"X-Authorization": token})
    assert (response.status_code, response.json()["error"]) == (401, "INVALID_TOKEN")
