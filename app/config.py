"""Settings: one object, read from the environment (prefix BATON_)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.store.urls import DatabaseURL, parse_database_url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BATON_", extra="ignore")

    # Empty means "SQLite file under DATA_DIR", the embedded default.
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    data_dir: Path = Path("data")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # Request bodies above this are refused with 413 before they are parsed.
    max_body_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    # Shown as `instance` in error bodies, as Conductor shows its host id.
    instance_id: str = ""
    metrics_enabled: bool = True
    db_pool_size: int = Field(default=10, ge=1, le=200)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.upper() if isinstance(v, str) else v

    @cached_property
    def database(self) -> DatabaseURL:
        raw = self.database_url or f"sqlite:///{(self.data_dir / 'baton.db').as_posix()}"
        return parse_database_url(raw)


def get_settings() -> Settings:
    return Settings()
