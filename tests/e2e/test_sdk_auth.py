"""The official conductor-python SDK authenticates against a real Baton process: access key
from CONDUCTOR_AUTH_KEY/CONDUCTOR_AUTH_SECRET, token refresh, no refresh loop on a wrong
secret, and open mode when Baton runs without authentication."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conductor.client.configuration.configuration import Configuration
from conductor.client.configuration.settings.authentication_settings import (
    AuthenticationSettings,
)
from conductor.client.http.models.create_or_update_application_request import (
    CreateOrUpdateApplicationRequest,
)
from conductor.client.http.models.task_def import TaskDef
from conductor.client.http.rest import ApiException
from conductor.client.orkes.orkes_authorization_client import OrkesAuthorizationClient
from conductor.client.orkes.orkes_metadata_client import OrkesMetadataClient

from tests.conftest import ServerProcess, start_server, stop_server


def _config(server: ServerProcess, secret: str | None = None, **kwargs: object) -> Configuration:
    auth = AuthenticationSettings(
        key_id=server.admin_key_id, key_secret=secret or server.admin_key_secret
    )
    return Configuration(server_api_url=f"{server.url}/api", authentication_settings=auth, **kwargs)


@pytest.fixture
def short_token_server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    proc = start_server(database_url, tmp_path, {"BATON_TOKEN_TTL_SECONDS": "1"})
    try:
        yield proc
    finally:
        stop_server(proc)


@pytest.fixture
def open_server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    proc = start_server(database_url, tmp_path, {"BATON_AUTH_ENABLED": "false"})
    try:
        yield proc
    finally:
        stop_server(proc)


def test_sdk_authenticates_from_conductor_auth_env_vars(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONDUCTOR_AUTH_KEY", server.admin_key_id)
    monkeypatch.setenv("CONDUCTOR_AUTH_SECRET", server.admin_key_secret)
    client = OrkesMetadataClient(Configuration(server_api_url=f"{server.url}/api"))
    client.register_task_def(TaskDef(name="sdk_task"))
    assert client.get_task_def("sdk_task").name == "sdk_task"


def test_sdk_refreshes_a_token_the_server_reports_expired(
    short_token_server: ServerProcess,
) -> None:
    config = _config(short_token_server)
    client = OrkesMetadataClient(config)
    client.get_all_task_defs()
    first = config.AUTH_TOKEN
    time.sleep(2.1)  # the 1 s token is now expired: 401 EXPIRED_TOKEN, refresh, retry
    assert client.get_all_task_defs() == []
    assert config.AUTH_TOKEN not in (None, first)


def test_sdk_renews_its_token_on_its_own_schedule(server: ServerProcess) -> None:
    config = _config(server, auth_token_ttl_min=0)
    client = OrkesMetadataClient(config)
    client.get_all_task_defs()
    first = config.AUTH_TOKEN
    client.get_all_task_defs()
    assert config.AUTH_TOKEN not in (None, first)


def _token_answers(server: ServerProcess, status: int) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=5).text
    pattern = (
        r'baton_http_requests_total\{method="POST",route="/api/token",status="'
        + str(status)
        + r'"\} ([0-9.]+)'
    )
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


def test_sdk_with_a_wrong_secret_fails_with_401_without_looping(server: ServerProcess) -> None:
    client = OrkesMetadataClient(_config(server, secret="not-the-secret"))
    with pytest.raises(ApiException) as failed:
        client.get_all_task_defs()
    assert failed.value.status == 401
    assert _token_answers(server, 401) <= 3


def test_sdk_falls_back_to_open_mode_when_auth_is_disabled(open_server: ServerProcess) -> None:
    config = _config(open_server)
    client = OrkesMetadataClient(config)
    client.register_task_def(TaskDef(name="open_task"))
    assert client.get_task_def("open_task").name == "open_task"
    assert config.authentication_settings is None  # the SDK saw /api/token answer 404


def test_sdk_manages_applications_and_access_keys(server: ServerProcess) -> None:
    authz = OrkesAuthorizationClient(_config(server))
    app = authz.create_application(CreateOrUpdateApplicationRequest(name="sdk_app"))
    assert app.name == "sdk_app"
    authz.add_role_to_application_user(app.id, "WORKER")
    created = authz.create_access_key(app.id)
    assert created.secret
    assert [k.id for k in authz.get_access_keys(app.id)] == [created.id]
    assert authz.toggle_access_key_status(app.id, created.id).status == "INACTIVE"
    assert authz.get_app_by_access_key_id(created.id)["id"] == app.id
    authz.delete_access_key(app.id, created.id)
    authz.delete_application(app.id)
    with pytest.raises(ApiException) as missing:
        authz.get_application(app.id)
    assert missing.value.status == 404


def test_sdk_reads_its_own_user_info(server: ServerProcess) -> None:
    info = OrkesAuthorizationClient(_config(server)).get_user_info_from_token()
    assert info["name"] == "admin"


def test_the_server_log_never_shows_a_secret_or_token(server: ServerProcess) -> None:
    config = _config(server)
    OrkesMetadataClient(config).get_all_task_defs()
    log = server.log()
    assert server.admin_key_secret not in log
    assert config.AUTH_TOKEN and config.AUTH_TOKEN not in log
