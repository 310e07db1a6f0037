"""`baton keys create`: an operator mints an access key from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import REPO_ROOT


def _keys_create(database_url: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BATON_DATABASE_URL": database_url, "BATON_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "keys", "create", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def _user_info(client: httpx.AsyncClient, key: dict[str, str]) -> dict[str, object]:
    response = await client.post("/api/token", json=key)
    assert response.status_code == 200, response.text
    headers = {"X-Authorization": response.json()["token"]}
    info: dict[str, object] = (await client.get("/api/token/userInfo", headers=headers)).json()
    return info


async def test_keys_create_prints_only_the_key_as_json(
    anon_client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    result = _keys_create(database_url, tmp_path, "--app", "ci", "--role", "WORKER")
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)) == {"keyId", "keySecret"}


async def test_the_printed_key_gets_a_token_with_the_role(
    anon_client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    result = _keys_create(database_url, tmp_path, "--app", "ci", "--role", "WORKER")
    info = await _user_info(anon_client, json.loads(result.stdout))
    assert info["name"] == "ci"
    assert [r["name"] for r in info["roles"]] == ["WORKER"]  # type: ignore[attr-defined]


async def test_keys_create_for_an_existing_application_adds_a_key_and_roles(
    anon_client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    first = json.loads(_keys_create(database_url, tmp_path, "--app", "ci", "--role", "USER").stdout)
    second = json.loads(
        _keys_create(database_url, tmp_path, "--app", "ci", "--role", "WORKER").stdout
    )
    one, two = await _user_info(anon_client, first), await _user_info(anon_client, second)
    assert one["id"] == two["id"]
    assert [r["name"] for r in two["roles"]] == ["USER", "WORKER"]  # type: ignore[attr-defined]


def test_an_unknown_role_is_a_usage_error(database_url: str, tmp_path: Path) -> None:
    result = _keys_create(database_url, tmp_path, "--app", "ci", "--role", "ROOT")
    assert result.returncode == 2
    assert "invalid choice: 'ROOT'" in result.stderr
    assert result.stdout == ""
