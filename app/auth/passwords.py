"""Access key secrets: generated here, stored only as a salted scrypt hash.

The hash string carries its own parameters (`scrypt$n$r$p$salt$hash`), so the cost can change
without invalidating stored keys. Hashing costs tens of milliseconds by design: callers on the
event loop use the `a*` variants, which run it in a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from functools import cache

# The work factor for new hashes. Tests lower it (their secrets are throwaway); verification
# always uses the parameters stored in the hash itself.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_DKLEN = 32
_MAXMEM = 128 * 1024 * 1024


def new_secret() -> str:
    """A fresh access key secret: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=_DKLEN)


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(secret, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, encoded: str) -> bool:
    """Constant-time comparison; a malformed stored hash never matches."""
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        actual = _scrypt(secret, _unb64(salt), int(n), int(r), int(p))
        expected = _unb64(digest)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


@cache
def _dummy_hash() -> str:
    return hash_secret(new_secret())


def burn_verification(secret: str) -> None:
    """Spend the time a real verification would, for a key id that does not exist, so the
    answer's timing does not tell which key ids exist."""
    verify_secret(secret, _dummy_hash())


async def ahash_secret(secret: str) -> str:
    return await asyncio.to_thread(hash_secret, secret)


async def averify_secret(secret: str, encoded: str | None) -> bool:
    if encoded is None:
        await asyncio.to_thread(burn_verification, secret)
        return False
    return await asyncio.to_thread(verify_secret, secret, encoded)
