"""Access key secrets: salted scrypt hashes, constant-time comparison."""

from __future__ import annotations

import pytest

from app.auth import passwords


def test_new_secrets_are_long_and_distinct() -> None:
    a, b = passwords.new_secret(), passwords.new_secret()
    assert a != b
    assert len(a) >= 43


def test_hash_verifies_the_right_secret_only() -> None:
    stored = passwords.hash_secret("right-secret")
    assert passwords.verify_secret("right-secret", stored)
    assert not passwords.verify_secret("wrong-secret", stored)


def test_hash_is_salted() -> None:
    assert passwords.hash_secret("same") != passwords.hash_secret("same")


def test_hash_does_not_contain_the_secret() -> None:
    secret = passwords.new_secret()
    assert secret not in passwords.hash_secret(secret)


def test_hash_carries_its_parameters_so_a_new_cost_keeps_old_hashes_valid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stored = passwords.hash_secret("s")
    monkeypatch.setattr(passwords, "SCRYPT_N", passwords.SCRYPT_N * 2)
    assert passwords.verify_secret("s", stored)


@pytest.mark.parametrize("stored", ["", "plain", "bcrypt$1$2$3$4$5", "scrypt$x$8$1$aa$bb"])
def test_malformed_stored_hash_never_matches(stored: str) -> None:
    assert not passwords.verify_secret("s", stored)


async def test_async_verification_of_an_unknown_key_is_false() -> None:
    assert not await passwords.averify_secret("s", None)
