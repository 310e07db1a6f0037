"""`baton secrets generate-key | rekey`, and `baton serve` refusing Postgres without a key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from app.auth.permissions import ANONYMOUS_ADMIN
from app.auth.service import AuthService
from app.clock import SystemClock
from app.config import Settings
from app.secrets import sealing
from app.secrets.keyring import Keyring, generate_key_text
from app.secrets.service import SecretService
from app.store.db import Database
from app.store.tables import secret_versions, secrets, workflows
from app.store.urls import parse_database_url
from tests.conftest import REPO_ROOT, ServerProcess, start_server, stop_server

OLD = generate_key_text("old")
NEW = generate_key_text("new")


def _cli(
    *args: str, env: dict[str, str], data_dir: Path, drop_key: bool = False
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not (drop_key and k == "BATON_SECRETS_KEY")}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env={**base, "BATON_DATA_DIR": str(data_dir), **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- generate-key -----------------------------------------------------------------------


def test_generate_key_prints_one_usable_keyring_entry(tmp_path: Path) -> None:
    result = _cli("secrets", "generate-key", "--key-id", "prod-2", env={}, data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert line.startswith("prod-2:") and "\n" not in line
    ring = Keyring.parse(line)
    assert ring.open(ring.seal("v", b"aad"), b"aad") == "v"


def test_generate_key_with_a_bad_key_id_is_a_one_line_error(tmp_path: Path) -> None:
    result = _cli("secrets", "generate-key", "--key-id", "bad.id", env={}, data_dir=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("baton: error: --key-id:")
    assert "Traceback" not in result.stderr


# -- rekey ------------------------------------------------------------------------------


async def _seed(database_url: str, tmp_path: Path) -> None:
    """Two secrets (one with an older version) and a workflow document holding a sealed
    `_secrets` subtree, all under the old key."""
    settings = Settings(database_url=database_url, data_dir=tmp_path, secrets_key=SecretStr(OLD))
    ring = Keyring.parse(OLD)
    db = Database(parse_database_url(database_url), pool_size=1)
    try:
        clock = SystemClock()
        service = SecretService(db, clock, settings, ring, AuthService(db, clock, settings))
        await service.put("token", "token-v1", ANONYMOUS_ADMIN)
        await service.put("token", "token-v2", ANONYMOUS_ADMIN)
        await service.put("other", "other-v1", ANONYMOUS_ADMIN)
        doc = sealing.seal_tree({"output": {"_secrets": {"t": "doc-secret"}}}, ring)
        async with db.write() as conn:
            await conn.execute(
                sa.insert(workflows).values(
                    workflow_id="wf-1",
                    name="flow",
                    version=1,
                    status="COMPLETED",
                    priority=0,
                    created_at=0,
                    updated_at=0,
                    doc=json.dumps(doc),
                    definition="{}",
                )
            )
    finally:
        await db.dispose()


async def _stored(database_url: str) -> tuple[list[tuple[str, int, str]], str]:
    db = Database(parse_database_url(database_url), pool_size=1)
    try:
        async with db.read() as conn:
            rows = [
                (r.name, r.version, r.value)
                for r in await conn.execute(
                    sa.select(secrets.c.name, secrets.c.version, secrets.c.value)
                )
            ]
            rows += [
                (r.name, r.version, r.value)
                for r in await conn.execute(
                    sa.select(
                        secret_versions.c.name, secret_versions.c.version, secret_versions.c.value
                    )
                )
            ]
            doc = await conn.scalar(sa.select(workflows.c.doc))
    finally:
        await db.dispose()
    return rows, str(doc)


async def test_rekey_reseals_every_value_and_document_under_the_first_key(
    database_url: str, tmp_path: Path
) -> None:
    await _seed(database_url, tmp_path)
    env = {"BATON_DATABASE_URL": database_url, "BATON_SECRETS_KEY": f"{NEW},{OLD}"}
    result = _cli("secrets", "rekey", env=env, data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    # 2 current values + 3 versions; 1 workflow document.
    assert result.stdout.strip() == (
        "re-sealed 5 secret values and 1 workflow/task documents under key 'new'"
    )
    rows, doc = await _stored(database_url)
    new_only = Keyring.parse(NEW)
    opened = {new_only.open(v, f"secret:{n}:{ver}".encode()) for n, ver, v in rows}
    assert opened == {"token-v1", "token-v2", "other-v1"}
    assert sealing.open_tree(json.loads(doc), new_only) == {
        "output": {"_secrets": {"t": "doc-secret"}}
    }


async def test_rekey_twice_changes_nothing_the_second_time(
    database_url: str, tmp_path: Path
) -> None:
    await _seed(database_url, tmp_path)
    env = {"BATON_DATABASE_URL": database_url, "BATON_SECRETS_KEY": f"{NEW},{OLD}"}
    _cli("secrets", "rekey", env=env, data_dir=tmp_path)
    again = _cli("secrets", "rekey", env=env, data_dir=tmp_path)
    assert again.stdout.strip().startswith("re-sealed 0 secret values and 0 workflow/task")


async def test_rekey_without_the_old_key_stops_with_one_line(
    database_url: str, tmp_path: Path
) -> None:
    await _seed(database_url, tmp_path)
    env = {"BATON_DATABASE_URL": database_url, "BATON_SECRETS_KEY": NEW}
    result = _cli("secrets", "rekey", env=env, data_dir=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("baton: error: rekey stopped:")
    assert "'old'" in result.stderr
    assert "Traceback" not in result.stderr
    assert "token-v" not in result.stderr


# -- serve without a key ----------------------------------------------------------------


def test_serve_on_postgres_without_a_key_exits_with_one_line(
    database_url: str, backend: str, tmp_path: Path
) -> None:
    if backend != "postgres":
        pytest.skip("the refusal is Postgres's; SQLite keeps a key file (next test)")
    env = {"BATON_DATABASE_URL": database_url, "BATON_PORT": "0"}
    result = _cli("serve", env=env, data_dir=tmp_path, drop_key=True)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("baton: error: BATON_SECRETS_KEY must be set when using Postgres")
    assert "baton secrets generate-key" in last
    assert "Traceback" not in result.stderr


def test_serve_on_sqlite_without_a_key_keeps_one_in_the_data_dir(
    backend: str, database_url: str, tmp_path: Path
) -> None:
    if backend != "sqlite":
        pytest.skip("Postgres refuses to start without a key (previous test)")
    # An empty setting counts as unset.
    server: ServerProcess = start_server(database_url, tmp_path, {"BATON_SECRETS_KEY": ""})
    try:
        key_file = tmp_path / "secrets.key"
        assert Keyring.parse(key_file.read_text().strip()).current_key_id == "local"
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
        assert server.log().count("next to the data it protects") == 1
    finally:
        stop_server(server)
