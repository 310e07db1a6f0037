"""JWT issue and verification: signature, expiry on the injectable clock, tampering."""

from __future__ import annotations

import base64
import json

import jwt
import pytest

from app.auth.tokens import TokenSigner
from app.clock import ManualClock
from app.errors import Unauthorized

KEY = b"k" * 48


def _signer(clock: ManualClock, key: bytes = KEY, ttl: int = 7200) -> TokenSigner:
    return TokenSigner(key, clock, ttl)


def _issue(signer: TokenSigner) -> str:
    return signer.issue(
        application_id="app-1", application_name="ci", key_id="key-1", roles=["WORKER"]
    )


def _error(signer: TokenSigner, token: str) -> tuple[str, str]:
    with pytest.raises(Unauthorized) as caught:
        signer.verify(token)
    return caught.value.error, caught.value.message


def test_a_fresh_token_verifies_with_its_application_and_key() -> None:
    signer = _signer(ManualClock())
    claims = signer.verify(_issue(signer))
    assert (claims.application_id, claims.key_id) == ("app-1", "key-1")
    assert claims.raw["roles"] == ["WORKER"]


def test_token_lives_for_the_configured_ttl() -> None:
    signer = _signer(ManualClock(), ttl=7200)
    claims = signer.verify(_issue(signer))
    assert claims.expires_at - claims.issued_at == 7200


def test_token_is_expired_once_the_clock_reaches_its_expiry() -> None:
    clock = ManualClock()
    signer = _signer(clock, ttl=60)
    token = _issue(signer)
    clock.advance(59_000)
    signer.verify(token)
    clock.advance(1_000)
    assert _error(signer, token) == ("EXPIRED_TOKEN", "Token has expired")


def test_token_signed_with_another_key_is_invalid() -> None:
    clock = ManualClock()
    token = _issue(_signer(clock, key=b"o" * 48))
    assert _error(_signer(clock), token)[0] == "INVALID_TOKEN"


def test_expired_token_signed_with_another_key_is_invalid_not_expired() -> None:
    clock = ManualClock()
    token = _issue(_signer(clock, key=b"o" * 48, ttl=1))
    clock.advance(10_000)
    assert _error(_signer(clock), token)[0] == "INVALID_TOKEN"


def test_tampered_payload_is_invalid() -> None:
    signer = _signer(ManualClock())
    header, payload, signature = _issue(signer).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["roles"] = ["ADMIN"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    assert _error(signer, f"{header}.{forged}.{signature}")[0] == "INVALID_TOKEN"


def test_unsigned_token_is_invalid() -> None:
    clock = ManualClock()
    claims = _signer(clock).verify(_issue(_signer(clock))).raw
    token = jwt.encode(claims, key="", algorithm="none")
    assert _error(_signer(clock), token)[0] == "INVALID_TOKEN"


def test_garbage_is_invalid() -> None:
    assert _error(_signer(ManualClock()), "not-a-jwt")[0] == "INVALID_TOKEN"


def test_token_without_key_id_is_invalid() -> None:
    clock = ManualClock()
    now = clock.now_ms() // 1000
    token = jwt.encode(
        {"iss": "baton", "sub": "app-1", "iat": now, "exp": now + 60}, KEY, algorithm="HS256"
    )
    assert _error(_signer(clock), token)[0] == "INVALID_TOKEN"
