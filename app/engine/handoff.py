"""What happens to a task's data at the edges of its run: secrets resolved just in time when
it is handed to a worker or a system task, and `outputFilter` applied when it completes.

Secrets. Stored task input keeps `${workflow.secrets.NAME}` literal (expressions.resolve
defers it), so no row ever holds a secret value. At hand-off the ORIGINAL template string is
resolved again with the secret values at hand; stored input is never re-resolved, because a
string that arrived as data (a workflow input reading "${workflow.secrets.admin}") must stay
data. Only template leaves that reference secrets are replaced; everything else is the input
as stored.

outputFilter (alias `_outputFilters`). Its `$${...}` survived input resolution as `${...}`;
when the task ends, the filter is resolved against the workflow with this task's fresh output
in place, and the task's output is REPLACED by the result, so the unfiltered response (say, a
body holding a token) is never stored, whether the task completed or failed.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final, Protocol

from app.engine import decider, expressions
from app.engine.expressions import SecretNotAvailable
from app.engine.model import Json, TaskRecord

OUTPUT_FILTER_KEYS: Final = ("outputFilter", "_outputFilters")
_SECRET_NAMES: Final = re.compile(r"workflow\.secrets\.([A-Za-z0-9_-]+)")
# Names computed from other expressions need one more lookup round each; bounded.
MAX_LOOKUP_ROUNDS: Final = 8


class SecretSource(Protocol):
    async def resolve_for_workflow(
        self, names: Iterable[str], run_as: str | None, workflow_id: str
    ) -> dict[str, str]: ...


def input_template(task: TaskRecord) -> Json:
    """The task's unresolved input, as decider._resolve_input saw it."""
    raw: Json = dict(task.workflowTask.get("inputParameters") or {})
    template = (task.taskDefinition or {}).get("inputTemplate") or {}
    for key, value in template.items():
        raw.setdefault(key, value)
    return raw


def secret_template(task: TaskRecord) -> Json | None:
    """The input template when it references secrets (the hand-off must resolve them)."""
    raw = input_template(task)
    return raw if expressions.references_secrets(raw) else None


async def resolve_secrets(
    task: TaskRecord,
    template: Json,
    context: Mapping[str, Any],
    source: SecretSource,
    run_as: str | None,
) -> tuple[Json, list[str]]:
    """The task's input with its secret references resolved, and the values used.
    Raises SecretNotAvailable for a secret that is missing or that `run_as` may not read."""
    values: dict[str, str] = {}
    asked: set[str] = set()
    names = set(_SECRET_NAMES.findall(_all_text(template)))
    for _ in range(MAX_LOOKUP_ROUNDS):
        wanted = names - asked
        if wanted:
            values.update(
                await source.resolve_for_workflow(sorted(wanted), run_as, task.workflowInstanceId)
            )
            asked |= wanted
        try:
            resolved = _merge(
                task.inputData, template, context, lambda n: values.get(n), task.taskId
            )
        except SecretNotAvailable as exc:
            if exc.name in asked:
                raise
            names.add(exc.name)  # a name computed at run time: look it up, then retry
            continue
        return resolved, list(values.values())
    raise SecretNotAvailable(sorted(names - asked)[0] if names - asked else "?")


def _all_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return " ".join(_all_text(v) for v in value.values())
    if isinstance(value, list):
        return " ".join(_all_text(v) for v in value)
    return ""


def _merge(
    stored: Json,
    template: Json,
    context: Mapping[str, Any],
    lookup: expressions.SecretResolver,
    task_id: str,
) -> Json:
    out: Json = copy.deepcopy(stored)
    for path, leaf in _secret_leaves(template, ()):
        value = expressions.resolve(leaf, context, task_id=task_id, secrets=lookup)
        _set_path(out, path, value)
    return out


def _secret_leaves(
    value: Any, path: tuple[str | int, ...]
) -> Iterable[tuple[tuple[str | int, ...], str]]:
    if isinstance(value, str):
        if expressions.references_secrets(value):
            yield path, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _secret_leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _secret_leaves(v, (*path, i))


def _set_path(doc: Json, path: tuple[str | int, ...], value: Any) -> None:
    """Set `value` at `path` if its parent exists with the same shape as in the template."""
    node: Any = doc
    for step in path[:-1]:
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                return
        elif not isinstance(node, dict) or step not in node:
            return
        node = node[step]
    last = path[-1]
    if isinstance(last, int):
        if isinstance(node, list) and last < len(node):
            node[last] = value
    elif isinstance(node, dict):
        node[last] = value


# -- outputFilter -----------------------------------------------------------------------


def output_filter_of(task: TaskRecord) -> Any:
    for key in OUTPUT_FILTER_KEYS:
        if key in task.inputData:
            return task.inputData[key]
    return None


def apply_output_filter(task: TaskRecord, context: Json) -> None:
    """Replace a finished task's output by its filter's result (no-op without a filter)."""
    spec = output_filter_of(task)
    if spec is None or not task.terminal:
        return
    context = {**context, task.base_ref: decider.task_context(task)}
    result = expressions.resolve(spec, context, task_id=task.taskId)
    task.outputData = result if isinstance(result, dict) else {"result": result}
