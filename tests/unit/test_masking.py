"""What readers are shown: `***` for `_secrets`/`_masked` subtrees, `maskedFields`, and any
known secret value wherever it turns up, in API documents and in log lines."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from app.secrets import masking
from app.secrets.masking import MASK, Redactor, mask_keys, masked_leaves, view, workflow_view


@pytest.fixture(autouse=True)
def fresh_process_values() -> Iterator[None]:
    saved = masking.PROCESS
    masking.PROCESS = Redactor()
    yield
    masking.PROCESS = saved


def test_secrets_subtree_is_shown_as_three_stars() -> None:
    doc = {"a": 1, "_secrets": {"token": "abcd1234"}, "b": {"_masked": ["x"]}}
    assert mask_keys(doc) == {"a": 1, "_secrets": MASK, "b": {"_masked": MASK}}


def test_masking_keys_does_not_touch_the_original() -> None:
    doc = {"_secrets": {"token": "abcd1234"}}
    mask_keys(doc)
    assert doc == {"_secrets": {"token": "abcd1234"}}


def test_masked_leaves_collects_strings_under_secret_keys_only() -> None:
    doc = {"x": "plain", "_secrets": {"t": "tok-1", "n": [1, "tok-2"]}, "y": {"_masked": "m-3"}}
    assert sorted(masked_leaves(doc)) == ["m-3", "tok-1", "tok-2"]


def test_a_value_under_secrets_is_masked_wherever_else_it_appears() -> None:
    doc = {
        "tasks": [
            {"outputData": {"_secrets": {"token": "tok-123456"}}},
            {"inputData": {"header": "Bearer tok-123456"}},
        ]
    }
    shown = view(doc)
    assert shown["tasks"][1]["inputData"]["header"] == f"Bearer {MASK}"
    assert "tok-123456" not in repr(shown)


def test_known_values_are_masked_inside_strings() -> None:
    masker = masking.Masker()
    masker.learn(["s3cr3t-value"])
    assert masker.view({"reason": "call failed: s3cr3t-value rejected"}) == {
        "reason": f"call failed: {MASK} rejected"
    }


def test_what_a_masker_learns_is_scrubbed_from_logs_too() -> None:
    masking.Masker().learn(["learned-value"])
    assert "learned-value" in masking.PROCESS


def test_one_apps_values_do_not_mask_another_apps_documents() -> None:
    masking.Masker().learn(["other-apps-secret"])
    assert masking.Masker().view({"a": "other-apps-secret"}) == {"a": "other-apps-secret"}


def test_short_values_are_not_masked_by_value() -> None:
    r = Redactor(["admin", "longer-value"])
    assert r.text("admin longer-value") == f"admin {MASK}"


def test_longest_value_wins_when_one_contains_another() -> None:
    r = Redactor(["secret", "secret-longer"])
    assert r.text("x secret-longer y") == f"x {MASK} y"


def test_masked_fields_hide_workflow_input_and_output_fields_and_their_values() -> None:
    doc = {
        "workflowDefinition": {"maskedFields": ["password"]},
        "input": {"password": "hunter2-pw", "user": "bob"},
        "output": {"echo": "pw was hunter2-pw"},
        "tasks": [],
    }
    shown = workflow_view(doc)
    assert shown["input"] == {"password": MASK, "user": "bob"}
    assert shown["output"] == {"echo": f"pw was {MASK}"}


def test_log_lines_and_tracebacks_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    masking.install_log_redaction()
    masking.PROCESS.add(["leaky-token-999"])
    log = logging.getLogger("baton.test")
    with caplog.at_level(logging.INFO):
        log.info("calling with %s", "leaky-token-999")
        try:
            raise ValueError("bad token leaky-token-999")
        except ValueError:
            log.exception("failed")
    text = caplog.text
    assert "leaky-token-999" not in text
    assert f"calling with {MASK}" in text
    assert f"bad token {MASK}" in text


def test_the_parts_of_a_json_secret_are_masked_too() -> None:
    masker = masking.Masker()
    masker.learn(['{"user": "svc-account", "password": "pa55word-xyz"}'])
    assert masker.text("login svc-account / pa55word-xyz") == f"login {MASK} / {MASK}"


def test_scrub_masks_known_values_but_keeps_secrets_subtrees_real() -> None:
    masker = masking.Masker()
    masker.learn(["token-value-1"])
    out = masker.scrub({"error": "bad token-value-1", "_secrets": {"t": "token-value-1"}})
    assert out == {"error": f"bad {MASK}", "_secrets": {"t": "token-value-1"}}
