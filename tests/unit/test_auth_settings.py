"""Authentication settings: defaults and the pairs that must be set together."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from app.config import Settings


def test_auth_is_on_by_default_with_two_hour_tokens_and_public_metrics() -> None:
    settings = Settings()
    assert settings.auth_enabled is True
    assert settings.token_ttl_seconds == 7200
    assert settings.metrics_public is True


def test_admin_key_id_without_secret_is_rejected() -> None:
    with pytest.raises(ValidationError, match="must be set together"):
        Settings(admin_key_id="admin")


def test_admin_key_secret_without_id_is_rejected() -> None:
    with pytest.raises(ValidationError, match="must be set together"):
        Settings(admin_key_secret=SecretStr("x" * 20))


def test_short_admin_key_secret_is_rejected() -> None:
    with pytest.raises(ValidationError, match="at least 16"):
        Settings(admin_key_id="admin", admin_key_secret=SecretStr("short"))


def test_short_token_signing_key_is_rejected() -> None:
    with pytest.raises(ValidationError, match="at least 32"):
        Settings(token_signing_key=SecretStr("short"))


def test_admin_key_secret_is_not_shown_in_the_settings_repr() -> None:
    settings = Settings(admin_key_id="admin", admin_key_secret=SecretStr("s3cret-value-1234"))
    assert "s3cret-value-1234" not in repr(settings)
