"""JSON_JQ_TRANSFORM (app/tasks/jq_transform.py), conductor-oss.md section 4."""

from __future__ import annotations

from app.tasks.jq_transform import JqTransformTask, _compile

task = JqTransformTask()


def test_addition_of_two_inputs() -> None:
    outcome = task.execute({"queryExpression": ".a + .b", "a": 1, "b": 2})
    assert outcome.status == "COMPLETED"
    assert outcome.output == {"result": 3, "resultList": [3]}


def test_collect_ids_into_array() -> None:
    outcome = task.execute({"queryExpression": "[.items[] | .id]", "items": [{"id": 1}, {"id": 2}]})
    assert outcome.output == {"result": [1, 2], "resultList": [[1, 2]]}


def test_multiple_results_fill_result_list() -> None:
    outcome = task.execute(
        {"queryExpression": ".items[] | .id", "items": [{"id": "x"}, {"id": "y"}]}
    )
    assert outcome.output == {"result": "x", "resultList": ["x", "y"]}


def test_no_results_gives_none_and_empty_list() -> None:
    outcome = task.execute({"queryExpression": "empty"})
    assert outcome.status == "COMPLETED"
    assert outcome.output == {"result": None, "resultList": []}


def test_query_expression_key_is_visible_to_the_query() -> None:
    outcome = task.execute({"queryExpression": ".queryExpression"})
    assert outcome.output["result"] == ".queryExpression"


def test_object_construction() -> None:
    outcome = task.execute(
        {
            "queryExpression": "{key3: (.key1.value1 + .key2.value2)}",
            "key1": {"value1": ["a"]},
            "key2": {"value2": ["b"]},
        }
    )
    assert outcome.output["result"] == {"key3": ["a", "b"]}


def test_integers_stay_int_and_decimals_float() -> None:
    outcome = task.execute({"queryExpression": "[.i * 2, .f * 2]", "i": 3, "f": 1.25})
    result = outcome.output["result"]
    assert result == [6, 2.5]
    assert type(result[0]) is int
    assert type(result[1]) is float


def test_indexing_a_string_fails_with_message() -> None:
    outcome = task.execute({"queryExpression": ".x.y", "x": "text"})
    assert outcome.status == "FAILED"
    assert outcome.reason == 'Cannot index string with string "y"'
    assert outcome.output == {"error": outcome.reason}


def test_compile_error_fails_with_first_useful_line() -> None:
    outcome = task.execute({"queryExpression": ".a | ("})
    assert outcome.status == "FAILED"
    assert outcome.reason is not None
    assert outcome.reason.startswith("syntax error")
    assert "\n" not in outcome.reason
    assert outcome.output == {"error": outcome.reason}


def test_undefined_function_fails_with_message() -> None:
    outcome = task.execute({"queryExpression": "nosuchfn(1)"})
    assert outcome.status == "FAILED"
    assert outcome.reason is not None and outcome.reason.startswith("nosuchfn/1 is not defined")


def test_user_error_message_is_reported() -> None:
    outcome = task.execute({"queryExpression": 'error("custom failure")'})
    assert outcome.status == "FAILED"
    assert outcome.reason == "custom failure"


def test_missing_query_expression_is_terminal() -> None:
    outcome = task.execute({"a": 1})
    assert outcome.status == "FAILED_WITH_TERMINAL_ERROR"
    assert outcome.reason == "Missing 'queryExpression' in input parameters"
    assert outcome.output == {"error": outcome.reason}


def test_non_string_query_expression_is_terminal() -> None:
    outcome = task.execute({"queryExpression": 5})
    assert outcome.status == "FAILED_WITH_TERMINAL_ERROR"


def test_compiled_programs_are_cached() -> None:
    _compile.cache_clear()
    for i in range(3):
        task.execute({"queryExpression": ".n + 1", "n": i})
    info = _compile.cache_info()
    assert info.misses == 1
    assert info.hits == 2
