"""JWTs for /api/token: HS256, signed with the server's key, timed by the injectable clock.

pyjwt checks the signature and the claims' shape; expiry is checked here against Baton's
clock (pyjwt would read the wall clock), so tests move time instead of sleeping.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import jwt

from app.clock import Clock
from app.errors import Unauthorized

ISSUER = "baton"
ALGORITHM = "HS256"
INVALID_TOKEN = "INVALID_TOKEN"
EXPIRED_TOKEN = "EXPIRED_TOKEN"
# Verified tokens remembered per process (a few MB at most).
MAX_VERIFIED = 10_000


@dataclass(frozen=True)
class TokenClaims:
    application_id: str
    key_id: str
    issued_at: int  # epoch seconds
    expires_at: int  # epoch seconds
    raw: dict[str, Any]


def invalid_token(message: str = "Invalid token") -> Unauthorized:
    return Unauthorized(message, error=INVALID_TOKEN)


class TokenSigner:
    def __init__(self, key: bytes, clock: Clock, ttl_seconds: int) -> None:
        self._key = key
        self._clock = clock
        self.ttl_seconds = ttl_seconds
        self._verified: dict[str, TokenClaims] = {}

    def issue(
        self,
        *,
        application_id: str,
        application_name: str,
        key_id: str,
        roles: list[str],
        ttl_seconds: int | None = None,
    ) -> str:
        now_s = self._clock.now_ms() // 1000
        claims = {
            "iss": ISSUER,
            "sub": application_id,
            "name": application_name,
            "keyId": key_id,
            "roles": roles,
            "iat": now_s,
            "exp": now_s + (ttl_seconds or self.ttl_seconds),
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def verify(self, token: str) -> TokenClaims:
        """The token's claims, or Unauthorized: INVALID_TOKEN for anything not signed by this
        server (or malformed), EXPIRED_TOKEN for a genuine token past its lifetime."""
        # A client sends the same token on every call: its signature is checked once. Only
        # tokens that verified are kept, keyed by their whole text, so a forged or altered
        # token never matches an entry; expiry is checked on every use.
        claims = self._verified.get(token)
        if claims is None:
            claims = self._verify_signature(token)
            if len(self._verified) >= MAX_VERIFIED:
                self._verified.clear()
            self._verified[token] = claims
        if claims.expires_at * 1000 <= self._clock.now_ms():
            raise Unauthorized("Token has expired", error=EXPIRED_TOKEN)
        return claims

    def _verify_signature(self, token: str) -> TokenClaims:
        try:
            raw: dict[str, Any] = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": ["iss", "sub", "keyId", "iat", "exp"],
                },
            )
        except jwt.PyJWTError:
            raise invalid_token() from None
        exp, iat = raw.get("exp"), raw.get("iat")
        sub, key_id = raw.get("sub"), raw.get("keyId")
        if not (
            isinstance(exp, int)
            and isinstance(iat, int)
            and isinstance(sub, str)
            and isinstance(key_id, str)
        ):
            raise invalid_token()
        return TokenClaims(sub, key_id, iat, exp, raw)
