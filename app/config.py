"""Settings: one object, read from the environment (prefix BATON_)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
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
    db_pool_size: int = Field(default=20, ge=1, le=200)
    # How often timers (task and workflow timeouts) are checked; they are also checked on
    # every change to a workflow.
    sweep_interval_ms: int = Field(default=1000, ge=10, le=60_000)
    # A queue's poll data (last poll time, worker) is written at most this often per queue
    # and worker, as Conductor's conductor.postgres.pollDataFlushInterval; 0 writes on
    # every poll. Every poller of a task type writes the same row: written on each poll,
    # it serialises the polls (row lock held to the end of each claim transaction).
    poll_data_interval_ms: int = Field(default=1000, ge=0, le=10_000)
    # Background loops (timer sweeps, system-task runner). Tests switch them off to drive
    # time by hand.
    background_enabled: bool = True
    # INLINE scripts stop after this long (Conductor's default is 4 s).
    script_timeout_ms: int = Field(default=4000, ge=10, le=60_000)
    # An HTTP task's response body larger than this fails the task instead of filling memory.
    http_max_response_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    # Authentication (Orkes-style applications, access keys and /api/token).
    auth_enabled: bool = True
    # Seed the bootstrap admin access key instead of generating one (containers).
    admin_key_id: str = Field(default="", max_length=64, pattern=r"^[A-Za-z0-9_.:-]*$")
    admin_key_secret: SecretStr | None = Field(default=None, validate_default=True)
    # Clients refresh every 45 minutes; tokens must outlive that comfortably.
    token_ttl_seconds: int = Field(default=7200, ge=1, le=31 * 24 * 3600)
    # Overrides the signing key Baton keeps in the database (shared by every process).
    token_signing_key: SecretStr | None = None
    # true: /metrics is open; false: it needs a token like every other endpoint.
    metrics_public: bool = True
    # Secrets at rest: "keyid:base64-32-bytes[,keyid:...]"; the first key encrypts, all
    # decrypt. Required on Postgres; SQLite falls back to $BATON_DATA_DIR/secrets.key.
    secrets_key: SecretStr | None = None
    # Values kept per secret (the current one included) for rollback.
    secrets_versions_kept: int = Field(default=10, ge=2, le=1000)
    secrets_max_value_bytes: int = Field(default=65536, ge=1, le=1024 * 1024)
    # Scheduler: this process fires due schedules (with background_enabled). Every process
    # on one database may; each slot still starts one workflow.
    scheduler_enabled: bool = True
    # Besides waking at the next slot, the scheduler re-reads the schedules this often: how
    # soon it sees other processes' changes and BUFFER_ONE runs whose predecessor ended.
    scheduler_rescan_ms: int = Field(default=2000, ge=100, le=60_000)
    # Execution records kept: this many days (0: no age limit) and this many newest per
    # schedule (0: no count limit).
    scheduler_retention_days: int = Field(default=30, ge=0, le=36_500)
    scheduler_retention_per_schedule: int = Field(default=1000, ge=0)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.upper() if isinstance(v, str) else v

    @field_validator("admin_key_secret")
    @classmethod
    def _admin_key_pair(cls, v: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        key_id = info.data.get("admin_key_id", "")
        secret = v.get_secret_value() if v is not None else ""
        if bool(key_id) != bool(secret):
            raise ValueError("BATON_ADMIN_KEY_ID and BATON_ADMIN_KEY_SECRET must be set together")
        if secret and len(secret) < 16:
            raise ValueError("must be at least 16 characters long")
        return v if secret else None

    @field_validator("token_signing_key")
    @classmethod
    def _signing_key_length(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters long")
        return v

    @cached_property
    def database(self) -> DatabaseURL:
        raw = self.database_url or f"sqlite:///{(self.data_dir / 'baton.db').as_posix()}"
        return parse_database_url(raw)


def get_settings() -> Settings:
    return Settings()
