"""A real `baton serve` process: it starts, migrates, answers, and reports bad settings in
one line instead of a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import REPO_ROOT, ServerProcess, free_port


def test_served_health_answers_healthy(server: ServerProcess) -> None:
    response = httpx.get(f"{server.url}/health", timeout=5)
    assert response.json()["healthy"] is True


def test_served_docs_page_renders(server: ServerProcess) -> None:
    response = httpx.get(f"{server.url}/docs", timeout=5)
    assert response.status_code == 200
    assert "swagger-ui-bundle.js" in response.text


def _run_cli(
    args: list[str], env: dict[str, str], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env={**os.environ, "BATON_DATA_DIR": str(tmp_path), **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_unreachable_database_is_a_one_line_error(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    result = _run_cli(["serve"], {"BATON_DATABASE_URL": url}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("baton: error: cannot reach the database")
    assert "Traceback" not in result.stderr


def test_bad_database_url_is_a_one_line_error(tmp_path: Path) -> None:
    result = _run_cli(["migrate"], {"BATON_DATABASE_URL": "mysql://root@localhost/db"}, tmp_path)
    assert result.returncode == 2
    assert "unsupported scheme 'mysql'" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_port_setting_is_a_one_line_error(tmp_path: Path) -> None:
    result = _run_cli(["migrate"], {"BATON_PORT": "eighty"}, tmp_path)
    assert result.returncode == 2
    assert "BATON_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_migrate_creates_the_embedded_database_under_data_dir(tmp_path: Path) -> None:
    env = {"BATON_DATABASE_URL": ""}
    result = _run_cli(["migrate"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "baton.db").exists()
