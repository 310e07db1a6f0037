"""Database URLs as users write them map to the async drivers."""

from __future__ import annotations

import pytest

from app.errors import ConfigError
from app.store.urls import parse_database_url


def test_plain_postgres_url_uses_asyncpg() -> None:
    parsed = parse_database_url("postgresql://postgres@127.0.0.1:5432/test")
    assert parsed.dialect == "postgresql"
    assert parsed.url.drivername == "postgresql+asyncpg"


def test_postgres_scheme_alias_is_accepted() -> None:
    assert parse_database_url("postgres://u@h/db").dialect == "postgresql"


def test_sqlite_path_uses_the_sqlite3_driver() -> None:
    parsed = parse_database_url("sqlite:///data/baton.db")
    assert parsed.url.drivername == "sqlite+pysqlite"
    assert parsed.sqlite_path == "data/baton.db"


def test_password_is_hidden_in_the_safe_form() -> None:
    assert "s3cret" not in parse_database_url("postgresql://u:s3cret@h/db").safe()


@pytest.mark.parametrize(
    "raw",
    ["mysql://u@h/db", "not a url", "sqlite://", "sqlite:///:memory:", "postgresql://u@h"],
)
def test_unusable_urls_are_refused_with_a_config_error(raw: str) -> None:
    with pytest.raises(ConfigError):
        parse_database_url(raw)
