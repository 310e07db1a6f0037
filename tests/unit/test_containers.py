"""No Docker engine runs here, so check what can be checked: the compose file parses, waits
for a healthy Postgres, and sets only settings Baton actually reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from app.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_compose_runs_baton_after_a_healthy_postgres_16() -> None:
    services = _compose()["services"]
    assert services["postgres"]["image"] == "postgres:16"
    assert "healthcheck" in services["postgres"]
    assert services["baton"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_compose_sets_only_settings_baton_reads() -> None:
    env = _compose()["services"]["baton"]["environment"]
    known = {f"BATON_{name.upper()}" for name in Settings.model_fields}
    assert set(env) <= known


def test_compose_database_url_points_at_the_postgres_service() -> None:
    env = _compose()["services"]["baton"]["environment"]
    settings = Settings(database_url=env["BATON_DATABASE_URL"])
    assert settings.database.dialect == "postgresql"
    assert settings.database.url.host == "postgres"


def test_dockerfile_runs_as_a_non_root_user() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
