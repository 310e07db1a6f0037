"""JSON_JQ_TRANSFORM (conductor-oss.md section 4): `queryExpression` is a jq program applied to
the *entire* task input (the `queryExpression` key included).

Output `{"result": <first result or None>, "resultList": [every result]}`; integral numbers
come back as int, others as float. A compile or runtime error -> FAILED with the first useful
message line in `reasonForIncompletion` and `output.error` (e.g. `Cannot index string with
string "y"`); a missing expression -> FAILED_WITH_TERMINAL_ERROR.

Compiled programs are cached per expression text: this runs on the engine's hot path.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import jq

from app.tasks.base import Json, TaskOutcome

QUERY_EXPRESSION = "queryExpression"

# jq >= 1.8 puts the offending value in parentheses (`... with string ("y")`); jq 1.7 and
# jackson-jq (what Conductor uses) print `... with string "y"`.
_PARENTHESISED_VALUE = re.compile(r"^(Cannot (?:index|iterate over) \w+(?: with \w+)?) \((.*)\)$")


@functools.lru_cache(maxsize=512)
def _compile(expression: str) -> Any:
    """A compiled jq program (thread-safe to reuse: jq keeps a state per run)."""
    return jq.compile(expression)


def _first_useful_line(message: str) -> str:
    for raw in message.splitlines():
        line = raw.strip()
        if not line or (line.startswith("jq: ") and line.endswith("compile error")):
            continue
        line = line.removeprefix("jq: error: ").removeprefix("jq: error")
        line = line.strip().removesuffix(":").strip()
        if line:
            return _PARENTHESISED_VALUE.sub(r"\1 \2", line)
    return message.strip() or "JSON_JQ_TRANSFORM failed"


class JqTransformTask:
    """The JSON_JQ_TRANSFORM system task (sync: runs inside the decide transaction)."""

    def execute(self, task_input: Json) -> TaskOutcome:
        expression = task_input.get(QUERY_EXPRESSION)
        if not isinstance(expression, str) or not expression.strip():
            reason = f"Missing '{QUERY_EXPRESSION}' in input parameters"
            return TaskOutcome.failed(reason, {"error": reason}, terminal=True)
        try:
            results: list[Any] = _compile(expression).input_value(task_input).all()
        except ValueError as exc:
            reason = _first_useful_line(str(exc))
            return TaskOutcome.failed(reason, {"error": reason})
        return TaskOutcome.completed(
            {"result": results[0] if results else None, "resultList": results}
        )
