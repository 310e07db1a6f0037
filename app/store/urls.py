"""Database URLs as users write them, mapped to the async drivers Baton uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from app.errors import ConfigError

Dialect = Literal["sqlite", "postgresql"]

_SQLITE_SCHEMES = {"sqlite", "sqlite+aiosqlite", "sqlite+pysqlite"}
_POSTGRES_SCHEMES = {
    "postgres",
    "postgresql",
    "postgresql+asyncpg",
    "postgresql+psycopg",
    "postgresql+psycopg2",
}


@dataclass(frozen=True)
class DatabaseURL:
    dialect: Dialect
    url: URL  # with the async driver Baton uses

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def sqlite_path(self) -> str | None:
        return self.url.database if self.is_sqlite else None

    def libpq_dsn(self) -> str:
        """The URL as asyncpg.connect() takes it (for the LISTEN connection)."""
        return self.url.set(drivername="postgresql").render_as_string(hide_password=False)

    def safe(self) -> str:
        """The URL with any password hidden, for logs and error messages."""
        return self.url.render_as_string(hide_password=True)


def parse_database_url(raw: str) -> DatabaseURL:
    raw = raw.strip()
    if raw.startswith("postgres://"):
        raw = "postgresql://" + raw[len("postgres://") :]
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigError(
            "BATON_DATABASE_URL is not a valid URL: expected postgresql://user@host:port/db "
            "or sqlite:///path"
        ) from None
    scheme = url.drivername
    if scheme in _SQLITE_SCHEMES:
        if not url.database or url.database == ":memory:":
            raise ConfigError(
                "BATON_DATABASE_URL: SQLite needs a file path (sqlite:///path/to/baton.db); "
                "in-memory databases lose every workflow on restart"
            )
        return DatabaseURL("sqlite", url.set(drivername="sqlite+pysqlite"))
    if scheme in _POSTGRES_SCHEMES:
        if not url.database:
            raise ConfigError("BATON_DATABASE_URL: the Postgres URL names no database")
        # asyncpg knows no libpq-only options such as sslmode; map the common one.
        query = dict(url.query)
        sslmode = query.pop("sslmode", None)
        if sslmode is not None and sslmode not in ("disable", "allow", "prefer"):
            query["ssl"] = sslmode
        return DatabaseURL("postgresql", url.set(drivername="postgresql+asyncpg", query=query))
    raise ConfigError(
        f"BATON_DATABASE_URL: unsupported scheme {scheme!r}; use postgresql:// or sqlite:///"
    )
