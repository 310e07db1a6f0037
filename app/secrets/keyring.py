"""The keyring: AES-256-GCM with named keys, for secret values at rest.

BATON_SECRETS_KEY holds comma-separated `keyid:base64(32 bytes)` entries. The first key seals
new values; every key opens, so a key can be rotated by putting a new one first, running
`baton secrets rekey`, and dropping the old one afterwards.

A sealed value is one line of text, `v1.<keyid>.<base64url(nonce || ciphertext+tag)>`, with a
random 96-bit nonce. The caller's AAD binds it to its place (a secret's name and version), so
a ciphertext copied into another row does not open there.

Nothing here ever puts key material or plaintext into an exception message or a log line.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.config import Settings
from app.errors import ConfigError

log = logging.getLogger("baton.secrets")

FORMAT = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12
KEY_FILE = "secrets.key"
# The id of the key Baton generates for an embedded (SQLite) install.
LOCAL_KEY_ID = "local"
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
# One warning per key file per process, however many apps a process builds.
_warned: set[Path] = set()


class SealError(Exception):
    """A sealed value does not open: tampered, sealed for another place, or under a key this
    keyring lacks. The message names the reason, never the value."""


def _decode_key(text: str) -> bytes | None:
    text = text.strip()
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            return decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            continue
    return None


def generate_key_text(key_id: str = LOCAL_KEY_ID) -> str:
    """A new random key as one `keyid:base64` entry for BATON_SECRETS_KEY."""
    if not _KEY_ID.match(key_id):
        raise ValueError("a key id is 1 to 32 characters of A-Z, a-z, 0-9, '_' or '-'")
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"


@dataclass(frozen=True)
class _Key:
    id: str
    aead: AESGCM


class Keyring:
    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one key")
        self._keys: dict[str, _Key] = {}
        for key_id, material in keys:
            if key_id in self._keys:
                raise ValueError(f"key id '{key_id}' appears twice")
            self._keys[key_id] = _Key(key_id, AESGCM(material))
        self.current_key_id = keys[0][0]

    @classmethod
    def parse(cls, text: str) -> Keyring:
        """`keyid:base64,keyid:base64,...`; errors name the entry, never its key."""
        keys: list[tuple[str, bytes]] = []
        entries = [e.strip() for e in text.split(",")]
        for position, entry in enumerate(entries, start=1):
            if not entry:
                raise ValueError(f"entry {position} is empty; expected keyid:base64-key")
            key_id, sep, encoded = entry.partition(":")
            key_id = key_id.strip()
            if not sep:
                raise ValueError(f"entry {position} has no ':'; expected keyid:base64-key")
            if not _KEY_ID.match(key_id):
                raise ValueError(
                    f"entry {position}: the key id must be 1 to 32 characters of "
                    "A-Z, a-z, 0-9, '_' or '-'"
                )
            material = _decode_key(encoded)
            if material is None:
                raise ValueError(f"key '{key_id}' is not valid base64")
            if len(material) != KEY_BYTES:
                raise ValueError(
                    f"key '{key_id}' is {len(material)} bytes long; AES-256 needs {KEY_BYTES}"
                )
            if any(k == key_id for k, _ in keys):
                raise ValueError(f"key id '{key_id}' appears twice")
            keys.append((key_id, material))
        return cls(keys)

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def seal(self, plaintext: str, aad: bytes) -> str:
        key = self._keys[self.current_key_id]
        nonce = os.urandom(NONCE_BYTES)
        sealed = key.aead.encrypt(nonce, plaintext.encode("utf-8"), aad)
        body = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")
        return f"{FORMAT}.{key.id}.{body}"

    def open(self, token: str, aad: bytes) -> str:
        fmt, key_id, body = _split(token)
        if fmt != FORMAT:
            raise SealError(f"unsupported sealed format '{fmt[:8]}'")
        key = self._keys.get(key_id)
        if key is None:
            raise SealError(f"sealed under key '{key_id}', which the keyring does not hold")
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            raise SealError("sealed value is not valid base64") from None
        if len(raw) < NONCE_BYTES + 16:
            raise SealError("sealed value is too short")
        try:
            plain = key.aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad)
        except InvalidTag:
            raise SealError(
                "sealed value does not open: it was altered or belongs to another place"
            ) from None
        return plain.decode("utf-8")

    def key_id_of(self, token: str) -> str:
        return _split(token)[1]

    def needs_rekey(self, token: str) -> bool:
        """True unless the value is sealed, in the current format, under the current key."""
        try:
            fmt, key_id, _ = _split(token)
        except SealError:
            return True
        return fmt != FORMAT or key_id != self.current_key_id


def _split(token: str) -> tuple[str, str, str]:
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise SealError("not a sealed value")
    return parts[0], parts[1], parts[2]


def _key_setting(settings: Settings) -> str | None:
    if settings.secrets_key is None:
        return None
    return settings.secrets_key.get_secret_value().strip() or None


def load_keyring(settings: Settings) -> Keyring:
    """The keyring from BATON_SECRETS_KEY. Without it, an embedded (SQLite) install keeps a
    generated key in $BATON_DATA_DIR/secrets.key; Postgres refuses, because several server
    processes must share one key and a key on one machine's disk would not be shared."""
    text = _key_setting(settings)
    if text is not None:
        try:
            return Keyring.parse(text)
        except ValueError as exc:
            raise ConfigError(f"invalid BATON_SECRETS_KEY: {exc}") from None
    if not settings.database.is_sqlite:
        raise ConfigError(
            "BATON_SECRETS_KEY must be set when using Postgres: every server process must "
            "share the key that encrypts secrets; generate one with `baton secrets generate-key`"
        )
    path = (settings.data_dir / KEY_FILE).resolve()
    keyring = _key_file(path)
    if path not in _warned:
        _warned.add(path)
        log.warning(
            "secrets are encrypted with the key in %s, next to the data it protects; "
            "set BATON_SECRETS_KEY (see `baton secrets generate-key`) to keep them apart",
            path,
        )
    return keyring


def _key_file(path: Path) -> Keyring:
    if not path.exists():
        _create_key_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the secrets key file {path}: {exc.strerror}") from None
    try:
        return Keyring.parse(text.strip())
    except ValueError as exc:
        raise ConfigError(f"invalid secrets key file {path}: {exc}") from None


def _create_key_file(path: Path) -> None:
    """Write the whole file under a temporary name, then link it into place: a reader never
    sees a half-written key, and when two processes race, both end up using the winner's."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(generate_key_text(LOCAL_KEY_ID) + "\n")
                f.flush()
                os.fsync(f.fileno())
            # FileExistsError: another process created it first; use theirs.
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the secrets key file {path}: {exc.strerror}") from None
