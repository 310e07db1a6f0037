"""The INLINE task (app/tasks/inline.py), conductor-oss.md section 4."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from app.tasks.inline import InlineTask
from app.tasks.js import JsEvaluator


@pytest.fixture(scope="module")
def evaluator() -> Iterator[JsEvaluator]:
    js = JsEvaluator(timeout_ms=4000, workers=2)
    yield js
    js.close()


@pytest.fixture
def task(evaluator: JsEvaluator) -> InlineTask:
    return InlineTask(evaluator)


async def test_javascript_result_is_output(task: InlineTask) -> None:
    outcome = await task.execute(
        {
            "evaluatorType": "javascript",
            "expression": "$.value1 + $.value2",
            "value1": 2,
            "value2": 3,
        }
    )
    assert outcome.status == "COMPLETED"
    assert outcome.output == {"result": 5}
    assert outcome.reason is None


async def test_missing_evaluator_type_defaults_to_javascript(task: InlineTask) -> None:
    outcome = await task.execute({"expression": "$.x * 2", "x": 4})
    assert outcome.status == "COMPLETED"
    assert outcome.output == {"result": 8}


async def test_graaljs_is_javascript(task: InlineTask) -> None:
    outcome = await task.execute({"evaluatorType": "graaljs", "expression": "[$.a, $.a]", "a": 1})
    assert outcome.output == {"result": [1, 1]}


async def test_dollar_is_the_whole_task_input(task: InlineTask) -> None:
    outcome = await task.execute({"expression": "Object.keys($).sort()", "k": 1})
    assert outcome.output == {"result": ["expression", "k"]}


async def test_iife_object_result(task: InlineTask) -> None:
    expression = (
        "(function(){ if ($.inlineValue == 1) { return {testvalue: true}; }"
        " return {testvalue: false}; })()"
    )
    outcome = await task.execute(
        {"evaluatorType": "javascript", "expression": expression, "inlineValue": 1}
    )
    assert outcome.output == {"result": {"testvalue": True}}


async def test_value_param_returns_the_named_input(task: InlineTask) -> None:
    outcome = await task.execute(
        {"evaluatorType": "value-param", "expression": "case", "case": {"x": [1]}}
    )
    assert outcome.status == "COMPLETED"
    assert outcome.output == {"result": {"x": [1]}}


async def test_value_param_missing_key_is_none(task: InlineTask) -> None:
    outcome = await task.execute({"evaluatorType": "value-param", "expression": "absent"})
    assert outcome.status == "COMPLETED"
    assert outcome.output == {"result": None}


async def test_missing_expression_is_terminal(task: InlineTask) -> None:
    outcome = await task.execute({"evaluatorType": "javascript"})
    assert outcome.status == "FAILED_WITH_TERMINAL_ERROR"
    assert outcome.reason is not None and "'expression'" in outcome.reason
    assert outcome.output == {"error": outcome.reason}


async def test_blank_expression_is_terminal(task: InlineTask) -> None:
    outcome = await task.execute({"evaluatorType": "javascript", "expression": "   "})
    assert outcome.status == "FAILED_WITH_TERMINAL_ERROR"


async def test_non_string_expression_is_terminal(task: InlineTask) -> None:
    outcome = await task.execute({"expression": 42})
    assert outcome.status == "FAILED_WITH_TERMINAL_ERROR"


async def test_unknown_evaluator_is_terminal(task: InlineTask) -> None:
    outcome = await task.execute({"evaluatorType": "python", "expression": "1 + 1"})
    assert outcome.status == "FAILED_WITH_TERMINAL_ERROR"
    assert outcome.reason == "Unknown evaluator 'python' in INLINE task."
    assert outcome.output == {"error": outcome.reason}


async def test_blank_evaluator_type_is_terminal(task: InlineTask) -> None:
    outcome = await task.execute({"evaluatorType": "", "expression": "1"})
    assert outcome.status == "FAILED_WITH_TERMINAL_ERROR"
    assert outcome.reason is not None and "'evaluatorType'" in outcome.reason


async def test_script_error_is_terminal_with_message(task: InlineTask) -> None:
    outcome = await task.execute({"expression": "throw new Error('bad input')"})
    assert outcome.status == "FAILED_WITH_TERMINAL_ERROR"
    assert outcome.reason == "Error: bad input"
    assert outcome.output == {"error": "Error: bad input"}


async def test_syntax_error_is_terminal_with_message(task: InlineTask) -> None:
    outcome = await task.execute({"expression": "function ("})
    assert outcome.status == "FAILED_WITH_TERMINAL_ERROR"
    assert outcome.reason is not None and outcome.reason.startswith("SyntaxError: ")
    assert outcome.output == {"error": outcome.reason}


async def test_timeout_is_retryable_failure() -> None:
    js = JsEvaluator(timeout_ms=200, workers=1)
    try:
        started = time.monotonic()
        outcome = await InlineTask(js).execute({"expression": "while (true) {}"})
    finally:
        js.close()
    assert time.monotonic() - started < 2
    assert outcome.status == "FAILED"
    assert outcome.reason == "Script evaluation exceeded the time limit of 200 ms"
    assert outcome.output == {"error": outcome.reason}


async def test_timeout_hint_shortens_the_limit(task: InlineTask) -> None:
    started = time.monotonic()
    outcome = await task.execute({"expression": "while (true) {}"}, timeout_hint_s=0.2)
    assert time.monotonic() - started < 2
    assert outcome.status == "FAILED"
    assert outcome.reason is not None and "200 ms" in outcome.reason


async def test_close_leaves_the_shared_evaluator_open(evaluator: JsEvaluator) -> None:
    await InlineTask(evaluator).close()
    assert await evaluator.evaluate("1", {}) == 1
