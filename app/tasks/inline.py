"""INLINE: evaluate an expression over the task input (conductor-oss.md section 4, INLINE).

Input keys: `evaluatorType` (`javascript` when missing; `graaljs` is the same engine;
`value-param`), `expression`, plus any data keys. JavaScript runs with `$` bound to the whole
task input; `value-param` reads `task_input[expression]`. Output `{"result": value}`.

Failures: a blank expression, an unknown evaluator, or a script error (syntax, thrown
exception, memory limit) -> FAILED_WITH_TERMINAL_ERROR, since retrying cannot help; a timeout
-> FAILED (retryable). The reason is also put in `output.error`.
"""

from __future__ import annotations

from typing import Any

from app.tasks.base import Json, TaskOutcome
from app.tasks.js import JsEvaluator, ScriptError, ScriptTimeout

EVALUATOR_TYPE = "evaluatorType"
EXPRESSION = "expression"
JAVASCRIPT_EVALUATORS = frozenset({"javascript", "graaljs"})
VALUE_PARAM = "value-param"


def _failure(reason: str, *, terminal: bool) -> TaskOutcome:
    return TaskOutcome.failed(reason, {"error": reason}, terminal=terminal)


class InlineTask:
    """The INLINE system task. The JsEvaluator is shared with other users (SWITCH, DO_WHILE)
    and owned by the caller: `close()` leaves it open."""

    def __init__(self, evaluator: JsEvaluator) -> None:
        self._evaluator = evaluator

    async def execute(
        self, task_input: Json, *, timeout_hint_s: float | None = None
    ) -> TaskOutcome:
        evaluator_type: Any = task_input.get(EVALUATOR_TYPE)
        if evaluator_type is None:
            evaluator_type = "javascript"
        if not isinstance(evaluator_type, str) or not evaluator_type.strip():
            return _failure(
                f"Empty '{EVALUATOR_TYPE}' in INLINE task's input parameters. "
                "A non-empty String value must be provided.",
                terminal=True,
            )
        expression = task_input.get(EXPRESSION)
        if not isinstance(expression, str) or not expression.strip():
            return _failure(
                f"Empty '{EXPRESSION}' in INLINE task's input parameters. "
                "A non-empty String value must be provided.",
                terminal=True,
            )

        if evaluator_type == VALUE_PARAM:
            return TaskOutcome.completed({"result": task_input.get(expression)})
        if evaluator_type not in JAVASCRIPT_EVALUATORS:
            return _failure(f"Unknown evaluator '{evaluator_type}' in INLINE task.", terminal=True)

        timeout_ms = self._evaluator.timeout_ms
        if timeout_hint_s is not None and timeout_hint_s > 0:
            timeout_ms = max(1, min(timeout_ms, int(timeout_hint_s * 1000)))
        try:
            result = await self._evaluator.evaluate(expression, task_input, timeout_ms)
        except ScriptTimeout as exc:
            return _failure(str(exc), terminal=False)
        except ScriptError as exc:
            return _failure(str(exc), terminal=True)
        return TaskOutcome.completed({"result": result})

    async def close(self) -> None:
        """Nothing to release: the evaluator belongs to whoever passed it in."""
