"""The keyring: AES-256-GCM with key ids, sealed values bound to their place, key rotation,
and where the key comes from (setting, key file, or a refusal on Postgres)."""

from __future__ import annotations

import base64
import logging
import os
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from app.config import Settings
from app.errors import ConfigError
from app.secrets.keyring import Keyring, SealError, generate_key_text, load_keyring

K1 = generate_key_text("k1")
K2 = generate_key_text("k2")
AAD = b"secret:api_token:1"


def _flip(token: str) -> str:
    head, body = token.rsplit(".", 1)
    middle = len(body) // 2
    swapped = "A" if body[middle] != "A" else "B"
    return f"{head}.{body[:middle]}{swapped}{body[middle + 1 :]}"


# -- sealing ----------------------------------------------------------------------------


def test_seal_then_open_round_trips() -> None:
    ring = Keyring.parse(K1)
    assert ring.open(ring.seal("tøken-value", AAD), AAD) == "tøken-value"


def test_sealed_value_names_format_and_key_and_hides_the_plaintext() -> None:
    token = Keyring.parse(K1).seal("token-value", AAD)
    assert token.startswith("v1.k1.")
    assert "token-value" not in token


def test_each_seal_uses_a_fresh_nonce() -> None:
    ring = Keyring.parse(K1)
    assert ring.seal("same", AAD) != ring.seal("same", AAD)


def test_tampered_value_does_not_open() -> None:
    ring = Keyring.parse(K1)
    with pytest.raises(SealError):
        ring.open(_flip(ring.seal("token-value", AAD)), AAD)


def test_value_sealed_for_another_place_does_not_open() -> None:
    ring = Keyring.parse(K1)
    token = ring.seal("token-value", AAD)
    with pytest.raises(SealError) as wrong:
        ring.open(token, b"secret:other:1")
    assert "token-value" not in str(wrong.value)


def test_unknown_key_id_does_not_open() -> None:
    token = Keyring.parse(K2).seal("token-value", AAD)
    with pytest.raises(SealError, match="'k2'"):
        Keyring.parse(K1).open(token, AAD)


@pytest.mark.parametrize("token", ["", "garbage", "v1.k1.", "v9.k1.abc", "v1.k1.!!!"])
def test_malformed_values_do_not_open(token: str) -> None:
    with pytest.raises(SealError):
        Keyring.parse(K1).open(token, AAD)


# -- rotation ---------------------------------------------------------------------------


def test_the_first_key_seals_and_every_key_opens() -> None:
    old = Keyring.parse(K1).seal("old-value", AAD)
    rotated = Keyring.parse(f"{K2},{K1}")
    assert rotated.current_key_id == "k2"
    assert rotated.open(old, AAD) == "old-value"
    assert rotated.seal("new", AAD).startswith("v1.k2.")


def test_needs_rekey_is_true_only_for_other_keys() -> None:
    old = Keyring.parse(K1).seal("v", AAD)
    rotated = Keyring.parse(f"{K2},{K1}")
    assert rotated.needs_rekey(old)
    assert not rotated.needs_rekey(rotated.seal("v", AAD))


def test_rekeyed_value_opens_with_the_new_key_alone() -> None:
    rotated = Keyring.parse(f"{K2},{K1}")
    resealed = rotated.seal(rotated.open(Keyring.parse(K1).seal("v", AAD), AAD), AAD)
    assert Keyring.parse(K2).open(resealed, AAD) == "v"


# -- parsing ----------------------------------------------------------------------------


def test_generated_key_text_parses_to_a_32_byte_key() -> None:
    key_id, _, encoded = generate_key_text("prod-1").partition(":")
    assert key_id == "prod-1"
    assert len(base64.b64decode(encoded)) == 32


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "entry 1 is empty"),
        ("no-colon", "no ':'"),
        ("bad.id:" + K1.split(":")[1], "key id"),
        ("k1:not base64!!", "not valid base64"),
        ("k1:" + base64.b64encode(b"short").decode(), "5 bytes long"),
        (f"{K1},{K1}", "appears twice"),
    ],
    # K1 is made at random: ids without it let parallel workers collect the same tests.
    ids=["empty", "no-colon", "bad-key-id", "bad-base64", "short-key", "twice"],
)
def test_bad_key_text_is_a_clear_error_without_key_material(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as bad:
        Keyring.parse(text)
    material = text.partition(":")[2]
    assert not material or material[:8] not in str(bad.value)


def test_urlsafe_base64_keys_are_accepted() -> None:
    raw = bytes(range(256))[-32:]
    ring = Keyring.parse("k:" + base64.urlsafe_b64encode(raw).decode().rstrip("="))
    assert ring.open(ring.seal("v", AAD), AAD) == "v"


# -- where the key comes from -----------------------------------------------------------


def _settings(tmp_path: Path, url: str, key: str | None) -> Settings:
    return Settings(
        database_url=url,
        data_dir=tmp_path / "data",
        secrets_key=SecretStr(key) if key is not None else None,
    )


def test_the_setting_wins(tmp_path: Path) -> None:
    ring = load_keyring(_settings(tmp_path, "", f"{K2},{K1}"))
    assert ring.key_ids == ["k2", "k1"]
    assert not (tmp_path / "data" / "secrets.key").exists()


def test_a_bad_setting_is_a_config_error_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid BATON_SECRETS_KEY: key 'k1' is 5 bytes"):
        load_keyring(_settings(tmp_path, "", "k1:" + base64.b64encode(b"short").decode()))


def test_sqlite_without_a_key_creates_a_private_key_file_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path, "", None)
    with caplog.at_level(logging.WARNING, logger="baton.secrets"):
        first = load_keyring(settings)
        second = load_keyring(settings)
    path = tmp_path / "data" / "secrets.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert second.open(first.seal("v", AAD), AAD) == "v"
    warnings = [r for r in caplog.records if "next to the data" in r.getMessage()]
    assert len(warnings) == 1
    assert path.read_text().strip().split(":")[1] not in caplog.text


def test_a_corrupt_key_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secrets.key"
    path.parent.mkdir(parents=True)
    path.write_text("local:tooshort\n")
    with pytest.raises(ConfigError, match="invalid secrets key file"):
        load_keyring(_settings(tmp_path, "", None))


def test_postgres_without_a_key_refuses(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "postgresql://postgres@127.0.0.1:5432/test", None)
    with pytest.raises(ConfigError) as refused:
        load_keyring(settings)
    message = str(refused.value)
    assert message.startswith("BATON_SECRETS_KEY must be set when using Postgres")
    assert "baton secrets generate-key" in message
    assert "\n" not in message
