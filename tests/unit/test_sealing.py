"""`_secrets` subtrees of stored documents are encrypted at rest and read back whole."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from app.secrets import sealing
from app.secrets.keyring import Keyring, SealError, generate_key_text

T1 = generate_key_text("t1")


@pytest.fixture
def keyring() -> Iterator[Keyring]:
    ring = Keyring.parse(T1)
    saved = sealing.installed()
    sealing.install(ring)
    yield ring
    sealing.install(saved)


def test_secrets_subtree_is_stored_encrypted(keyring: Keyring) -> None:
    text = sealing.dump_doc({"outputData": {"_secrets": {"token": "plain-token-value"}}})
    assert "plain-token-value" not in text
    assert '"$sealed"' in text


def test_sealed_document_reads_back_as_it_was(keyring: Keyring) -> None:
    doc = {"a": [1, {"_secrets": {"token": "t0k3n", "n": 5}}], "b": "x"}
    assert sealing.load_doc(sealing.dump_doc(doc)) == doc


def test_documents_without_secrets_are_stored_as_plain_json(keyring: Keyring) -> None:
    doc = {"a": {"b": [1, 2]}}
    assert json.loads(sealing.dump_doc(doc)) == doc


def test_a_scalar_under_secrets_is_sealed_too(keyring: Keyring) -> None:
    text = sealing.dump_doc({"_secrets": "just-a-string"})
    assert "just-a-string" not in text
    assert sealing.load_doc(text) == {"_secrets": "just-a-string"}


def test_tampered_ciphertext_is_refused(keyring: Keyring) -> None:
    doc = json.loads(sealing.dump_doc({"_secrets": {"k": "v"}}))
    token = doc["_secrets"]["$sealed"]
    doc["_secrets"]["$sealed"] = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(SealError):
        sealing.load_doc(json.dumps(doc))


def test_reseal_moves_documents_to_the_newest_key(keyring: Keyring) -> None:
    text = sealing.dump_doc({"_secrets": {"k": "value-1"}})
    both = Keyring.parse(generate_key_text("t2") + "," + T1)
    resealed = sealing.reseal_text(text, both)
    assert resealed is not None
    token = json.loads(resealed)["_secrets"]["$sealed"]
    assert both.key_id_of(token) == "t2"
    sealing.install(both)
    assert sealing.load_doc(resealed) == {"_secrets": {"k": "value-1"}}


def test_reseal_leaves_documents_without_sealed_parts_alone(keyring: Keyring) -> None:
    assert sealing.reseal_text('{"a":1}', keyring) is None


def test_a_sealed_looking_value_outside_secrets_is_plain_data(keyring: Keyring) -> None:
    doc = {"input": {"x": {"$sealed": "not-ours"}}}
    assert sealing.load_doc(sealing.dump_doc(doc)) == doc


def test_a_secrets_value_that_imitates_a_wrapper_is_sealed_like_any_other(
    keyring: Keyring,
) -> None:
    doc = {"_secrets": {"$sealed": "junk"}}
    text = sealing.dump_doc(doc)
    assert "junk" not in text
    assert sealing.load_doc(text) == doc
