"""`_secrets` subtrees of stored documents, encrypted at rest.

A running workflow must keep the real values under `_secrets` (a later task reads
`${retrieve_token.output._secrets.token}`), but the database must never hold them in clear
text. The store passes every workflow and task document through `seal_doc` on the way in and
`open_doc` on the way out, so the engine works on plain values and the rows hold ciphertext:
each `_secrets` value becomes `{"$sealed": "<token>"}`, sealed with the secrets keyring.

The keyring is process-wide (installed at start-up) because the store functions take only a
connection; with none installed, documents are stored as they are (unit tests of the store).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

SECRETS_KEY = "_secrets"
SEALED_KEY = "$sealed"
# Binds the ciphertext to its purpose: a sealed subtree cannot pass for a secret's value.
_AAD = b"baton:doc:_secrets"


class Sealer(Protocol):
    def seal(self, plaintext: str, aad: bytes) -> str: ...

    def open(self, token: str, aad: bytes) -> str: ...


_sealer: Sealer | None = None


def install(sealer: Sealer | None) -> None:
    global _sealer
    _sealer = sealer


def installed() -> Sealer | None:
    return _sealer


def _dumps(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def dump_doc(doc: Any) -> str:
    """Serialize a stored document, sealing every `_secrets` value inside it."""
    text = _dumps(doc)
    if _sealer is None or '"_secrets"' not in text:
        return text
    return _dumps(seal_tree(doc, _sealer))


def load_doc(text: str) -> Any:
    """Parse a stored document, opening what `dump_doc` sealed."""
    doc = json.loads(text)
    if '"$sealed"' not in text or '"_secrets"' not in text:
        return doc
    if _sealer is None:
        raise RuntimeError("a sealed document was read but no secrets keyring is installed")
    return open_tree(doc, _sealer)


def seal_tree(value: Any, sealer: Sealer) -> Any:
    """Every value under a `_secrets` key sealed whole (whatever it looks like: a value that
    imitates a sealed wrapper is sealed too, so only Baton's own wrappers are ever opened)."""
    if isinstance(value, dict):
        return {
            k: {SEALED_KEY: sealer.seal(_dumps(v), _AAD)}
            if k == SECRETS_KEY
            else seal_tree(v, sealer)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [seal_tree(v, sealer) for v in value]
    return value


def open_tree(value: Any, sealer: Sealer) -> Any:
    """The inverse of seal_tree: only a wrapper directly under a `_secrets` key is opened;
    `{"$sealed": ...}` anywhere else is data, left as it is."""
    if isinstance(value, dict):
        return {
            k: json.loads(sealer.open(v[SEALED_KEY], _AAD))
            if k == SECRETS_KEY and _is_sealed(v)
            else open_tree(v, sealer)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [open_tree(v, sealer) for v in value]
    return value


def seal_value(doc: Any) -> Any:
    """seal_tree with the installed keyring, for documents kept in JSON columns."""
    if _sealer is None or not _has_secrets_key(doc):
        return doc
    return seal_tree(doc, _sealer)


def open_value(doc: Any) -> Any:
    if _sealer is None or not _has_secrets_key(doc):
        return doc
    return open_tree(doc, _sealer)


def _has_secrets_key(value: Any) -> bool:
    if isinstance(value, dict):
        return any(k == SECRETS_KEY or _has_secrets_key(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_secrets_key(v) for v in value)
    return False


def reseal_text(text: str, sealer: Sealer) -> str | None:
    """The document re-sealed under the sealer's current key (for `baton secrets rekey`);
    None when it holds nothing sealed."""
    if '"$sealed"' not in text:
        return None
    return _dumps(seal_tree(open_tree(json.loads(text), sealer), sealer))


def _is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(SEALED_KEY), str)
