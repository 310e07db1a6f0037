"""Definition validation: Conductor's bean-validation rules for TaskDef and WorkflowDef.

Pure functions, no I/O. Messages copy Conductor's texts where Conductor has one (so clients
matching on them keep working); the rest follow the same style. Paths are property paths
such as `tasks[1].forkTasks[0][1].name`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.errors import FieldError, ValidationFailed
from app.schemas.metadata import TaskDef, WorkflowDef, WorkflowTask
from app.tasks.waiting import parse_duration

MAX_NAME_LENGTH = 255  # the name columns of the definition tables

SUPPORTED_TASK_TYPES: frozenset[str] = frozenset(
    {
        "SIMPLE",
        "DYNAMIC",
        "FORK_JOIN",
        "FORK_JOIN_DYNAMIC",
        "DECISION",
        "SWITCH",
        "JOIN",
        "DO_WHILE",
        "SUB_WORKFLOW",
        "START_WORKFLOW",
        "EVENT",
        "WAIT",
        "HUMAN",
        "HTTP",
        "INLINE",
        "EXCLUSIVE_JOIN",
        "TERMINATE",
        "JSON_JQ_TRANSFORM",
        "SET_VARIABLE",
        "NOOP",
        "UPDATE_SECRET",
    }
)

SWITCH_EVALUATORS = ("value-param", "javascript", "graaljs")
INLINE_EVALUATORS = ("javascript", "graaljs", "value-param")
TERMINATION_STATUSES = ("COMPLETED", "FAILED", "TERMINATED")

# Roots a `${...}` input may start with besides a task reference name.
_SYSTEM_ROOTS = frozenset({"workflow", "CPEWF_TASK_ID"})


# -- small helpers -------------------------------------------------------------------------


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def _show(value: object) -> str:
    """Java's `%s` of a possibly-null value, as Conductor prints it."""
    return "null" if value is None else str(value)


def _is_expression(value: object) -> bool:
    """A value resolved at run time, so only checkable then."""
    return isinstance(value, str) and "${" in value


def _name_errors(name: str | None, owner: str) -> list[FieldError]:
    if _blank(name):
        return [FieldError("name", f"{owner} name cannot be null or empty", name)]
    assert name is not None
    if len(name) > MAX_NAME_LENGTH:
        message = f"{owner} name cannot be longer than {MAX_NAME_LENGTH} characters"
        return [FieldError("name", message, name)]
    return []


# -- TaskDef -------------------------------------------------------------------------------

# (field, minimum); optional fields are checked only when set.
_TASK_DEF_MINIMUMS: tuple[tuple[str, int], ...] = (
    ("retryCount", 0),
    ("retryDelaySeconds", 0),
    ("timeoutSeconds", 0),
    ("totalTimeoutSeconds", 0),
    ("backoffScaleFactor", 1),
    ("maxRetryDelaySeconds", 0),
    ("backoffJitterMs", 0),
    ("pollTimeoutSeconds", 0),
    ("concurrentExecLimit", 0),
    ("rateLimitPerFrequency", 0),
    ("rateLimitFrequencyInSeconds", 1),
)


def _task_def_range_errors(td: TaskDef, name: str | None, prefix: str) -> list[FieldError]:
    errors: list[FieldError] = []
    for field, minimum in _TASK_DEF_MINIMUMS:
        value = getattr(td, field)
        if value is not None and value < minimum:
            message = f"TaskDef: {_show(name)} {field} must be >= {minimum}"
            errors.append(FieldError(prefix + field, message, value))
    response = td.responseTimeoutSeconds
    if response < 1:
        message = f"TaskDef responseTimeoutSeconds: {response} should be minimum 1 second"
        errors.append(FieldError(prefix + "responseTimeoutSeconds", message, response))
    return errors


def _task_def_timeout_errors(td: TaskDef, name: str | None, prefix: str) -> list[FieldError]:
    errors: list[FieldError] = []
    timeout, response, total = td.timeoutSeconds, td.responseTimeoutSeconds, td.totalTimeoutSeconds
    if timeout > 0 and response > timeout:
        message = (
            f"TaskDef: {_show(name)} responseTimeoutSeconds: {response} "
            f"must be less than timeoutSeconds: {timeout}"
        )
        errors.append(FieldError(prefix + "responseTimeoutSeconds", message, response))
    if total > 0 and timeout > total:
        message = (
            f"TaskDef: {_show(name)} timeoutSeconds: {timeout} "
            f"must be less than or equal to totalTimeoutSeconds: {total}"
        )
        errors.append(FieldError(prefix + "totalTimeoutSeconds", message, total))
    return errors


def _task_def_rule_errors(td: TaskDef, name: str | None, prefix: str) -> list[FieldError]:
    return _task_def_range_errors(td, name, prefix) + _task_def_timeout_errors(td, name, prefix)


def task_def_errors(td: TaskDef) -> list[FieldError]:
    """Every rule a registered TaskDef breaks; empty when it is valid."""
    return _name_errors(td.name, "TaskDef") + _task_def_rule_errors(td, td.name, "")


def validate_task_def(td: TaskDef) -> None:
    errors = task_def_errors(td)
    if errors:
        raise ValidationFailed(errors)


# -- walking the task tree ----------------------------------------------------------------


@dataclass(frozen=True)
class _Node:
    task: WorkflowTask
    path: str
    previous: WorkflowTask | None  # the sibling just before it, if any


def _walk(tasks: list[WorkflowTask], prefix: str) -> Iterator[_Node]:
    """Depth first, in WorkflowTask.children() order, with readable paths."""
    previous: WorkflowTask | None = None
    for i, task in enumerate(tasks):
        path = f"{prefix}[{i}]"
        yield _Node(task, path, previous)
        for case, branch in task.decisionCases.items():
            yield from _walk(branch, f"{path}.decisionCases[{case}]")
        yield from _walk(task.defaultCase, f"{path}.defaultCase")
        for b, branch in enumerate(task.forkTasks):
            yield from _walk(branch, f"{path}.forkTasks[{b}]")
        yield from _walk(task.loopOver, f"{path}.loopOver")
        previous = task


@dataclass(frozen=True)
class _Context:
    workflow_name: str | None
    refs: frozenset[str]
    task_defs: Mapping[str, TaskDef]


def _input_value(task: WorkflowTask, key: str, ctx: _Context) -> tuple[bool, Any]:
    """(present, value) of an input key, from inputParameters or the TaskDef's inputTemplate."""
    if key in task.inputParameters:
        return True, task.inputParameters[key]
    td = task.taskDefinition or (ctx.task_defs.get(task.name) if task.name else None)
    if td is not None and key in td.inputTemplate:
        return True, td.inputTemplate[key]
    return False, None


def _has_input(task: WorkflowTask, key: str, ctx: _Context) -> bool:
    return _input_value(task, key, ctx)[0]


# -- per-type rules (WorkflowTaskTypeConstraint) ------------------------------------------


def _required(task: WorkflowTask, path: str, field: str, path_field: str = "") -> FieldError:
    message = f"{field} field is required for taskType: {task.type} taskName: {_show(task.name)}"
    return FieldError(f"{path}.{path_field or field}", message)


def _at_least_one(task: WorkflowTask, path: str, field: str) -> FieldError:
    message = (
        f"{field} should have atleast one task for taskType: {task.type} "
        f"taskName: {_show(task.name)}"
    )
    return FieldError(f"{path}.{field}", message)


def _unsupported_evaluator(
    task: WorkflowTask, path: str, field: str, value: object, allowed: tuple[str, ...]
) -> FieldError:
    message = (
        f"evaluatorType: {_show(value)} is not supported for taskType: {task.type} "
        f"taskName: {_show(task.name)} (use one of: {', '.join(allowed)})"
    )
    return FieldError(f"{path}.{field}", message, value)


def _event_errors(task: WorkflowTask, path: str, ctx: _Context) -> list[FieldError]:
    return [_required(task, path, "sink")] if _blank(task.sink) else []


def _decision_errors(task: WorkflowTask, path: str, ctx: _Context) -> list[FieldError]:
    errors: list[FieldError] = []
    if _blank(task.caseValueParam) and _blank(task.caseExpression):
        field = "caseValueParam or caseExpression"
        errors.append(_required(task, path, field, "caseValueParam"))
    if not task.decisionCases:
        errors.append(_at_least_one(task, path, "decisionCases"))
    return errors


def _switch_errors(task: WorkflowTask, path: str, ctx: _Context) -> list[FieldError]:
    errors: list[FieldError] = []
    if _blank(task.evaluatorType):
        errors.append(_required(task, path, "evaluatorType"))
    elif task.evaluatorType not in SWITCH_EVALUATORS:
        errors.append(
            _unsupported_evaluator(
                task, path, "evaluatorType", task.evaluatorType, SWITCH_EVALUATORS
            )
        )
    if _blank(task.expression):
        errors.append(_required(task, path, "expression"))
    if not task.decisionCases:
        errors.append(_at_least_one(task, path, "decisionCases"))
    return errors


def _dynamic_errors(task: WorkflowTask, path: str, ctx: _Context) -> list[FieldError]:
    if _blank(task.dynamicTaskNameParam):
        return [_required(task, path, "dynamicTaskNameParam")]
    return []


def _simple_dynamic_fork_errors(task: WorkflowTask, path: str) -> list[FieldError]:
    """The newer form: forkTaskName (or forkTaskWorkflow) and forkTaskInputs as inputs."""
    errors: list[FieldError] = []
    inputs = task.inputParameters
    if "forkTaskName" not in inputs and "forkTaskWorkflow" not in inputs:
        field = "inputParameters.forkTaskName or inputParameters.forkTaskWorkflow"
        errors.append(_required(task, path, field, "inputParameters.forkTaskName"))
    if "forkTaskInputs" not in inputs:
        errors.append(_required(task, path, "inputParameters.forkTaskInputs"))
    return errors


def _dynamic_fork_errors(task: WorkflowTask, path: str, ctx: _Context) -> list[FieldError]:
    classic = not _blank(task.dynamicForkTasksParam) or not _blank(
        task.dynamicForkTasksInputParamName
    )
    if not _blank(task.dynamicForkJoinTasksParam):
        if not classic:
            return []  # the deprecated single-parameter form
        message = (
            "dynamicForkJoinTasksParam or combination of dynamicForkTasksInputParamName and "
            f"dynamicForkTasksParam cam be used for taskType: {task.type} "
            f"taskName: {_show(task.name)}"
        )
        return [FieldError(f"{path}.dynamicForkJoinTasksParam", message)]
    simple_keys = ("forkTaskName", "forkTaskWorkflow", "forkTaskInputs")
    if not classic and any(k in task.inputParameters for k in simple_keys):
        return _simple_dynamic_fork_errors(task, path)
    errors: list[FieldError] = []
    for field in ("dynamicForkTasksParam", "dynamicForkTasksInputParamName"):
        if _blank(getattr(task, field)):
            errors.append(_required(task, path, field))
    return errors


def _http_errors(task: WorkflowTask, path: str, ctx: _Context) -> list[FieldError]:
    # The flat form (uri at the top of the inputs, method defaulting to GET) is accepted too.
    if _has_input(task, "http_request", ctx) or _has_input(task, "uri", ctx):
        return []
    field = "inputParameters.http_request or inputParameters.uri"
    return [_required(task, path, field, "inputParameters.http_request")]


def _fork_join_errors(task: WorkflowTask, path: str, ctx: _Context) -> list[FieldError]:
    if not task.forkTasks:
        return [_at_least_one(task, path, "forkTasks")]
    # An empty branch has no first task to schedule, so it can never run.
    return [
        _at_least_one(task, path, f"forkTasks[{b}]")
        for b, branch in enumerate(task.forkTasks)
        if not branch
    ]


def _terminate_errors(task: WorkflowTask, path: str, ctx: _Context) -> list[FieldError]:
    errors: list[FieldError] = []
    name = _show(task.name)
    if task.optional:
        message = f"terminate task cannot be optional, taskName: {name}"
        errors.append(FieldError(f"{path}.optional", message, True))
    status = task.inputParameters.get("terminationStatus")
    if status not in TERMINATION_STATUSES:
        message = (
            "terminate task must have an terminationStatus parameter and must be set to "
            f"COMPLETED, FAILED or TERMINATED, taskName: {name}"
        )
        errors.append(FieldError(f"{path}.inputParameters.terminationStatus", message, status))
    return errors


def _do_while_errors(task: WorkflowTask, path: str, ctx: _Context) -> list[FieldError]:
    errors: list[FieldError] = []
    if _blank(task.loopCondition):
        errors.append(_required(task, path, "loopCondition"))
    if not task.loopOver:
        errors.append(_required(task, path, "loopOver"))
    return errors


def _sub_workflow_errors(task: WorkflowTask, path: str, ctx: _Context) -> list[FieldError]:
    params = task.subWorkflowParam
    if params is None:
        return [_required(task, path, "subWorkflowParam")]
    if _blank(params.name) and params.workflowDefinition is None:
        field = "subWorkflowParam.name or subWorkflowParam.workflowDefinition"
        return [_required(task, path, field, "subWorkflowParam.name")]
    return []


def _jq_errors(task: WorkflowTask, path: str, ctx: _Context) -> list[FieldError]:
    if _has_input(task, "queryExpression", ctx):
        return []
    return [_required(task, path, "inputParameters.queryExpression")]


def _inline_errors(task: WorkflowTask, path: str, ctx: _Context) -> list[FieldError]:
    errors: list[FieldError] = []
    if not _has_input(task, "expression", ctx):
        errors.append(_required(task, path, "inputParameters.expression"))
    # A missing evaluatorType means javascript, as in Conductor.
    present, evaluator = _input_value(task, "evaluatorType", ctx)
    if present and not _is_expression(evaluator) and evaluator not in INLINE_EVALUATORS:
        field = "inputParameters.evaluatorType"
        errors.append(_unsupported_evaluator(task, path, field, evaluator, INLINE_EVALUATORS))
    return errors


# -- WAIT ----------------------------------------------------------------------------------

_ZONE = re.compile(r"[A-Za-z][A-Za-z0-9/_+:-]*|[+-]\d{2}:?\d{2}", re.ASCII)


def _strptime_ok(text: str, fmt: str) -> bool:
    try:
        datetime.strptime(text, fmt)
    except ValueError:
        return False
    return True


def _parses_as_date(value: object) -> bool:
    """Conductor's `until` formats: yyyy-MM-dd HH:mm [zone] or yyyy-MM-dd."""
    if not isinstance(value, str):
        return False
    text = value.strip()
    if _strptime_ok(text, "%Y-%m-%d %H:%M") or _strptime_ok(text, "%Y-%m-%d"):
        return True
    head, _, zone = text.rpartition(" ")
    return bool(_ZONE.fullmatch(zone)) and _strptime_ok(head.strip(), "%Y-%m-%d %H:%M")


def _given(value: object) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _wait_errors(task: WorkflowTask, path: str, ctx: _Context) -> list[FieldError]:
    errors: list[FieldError] = []
    duration = task.inputParameters.get("duration")
    until = task.inputParameters.get("until")
    name = _show(task.name)
    if _given(duration) and _given(until):
        message = "Both 'duration' and 'until' specified. Please provide only one input"
        errors.append(FieldError(f"{path}.inputParameters", message))
    if _given(duration) and not _is_expression(duration) and parse_duration(duration) is None:
        message = f"Unable to parse duration: {duration} for taskType: WAIT taskName: {name}"
        errors.append(FieldError(f"{path}.inputParameters.duration", message, duration))
    if _given(until) and not _is_expression(until) and not _parses_as_date(until):
        message = f"Unable to parse date: {until} for taskType: WAIT taskName: {name}"
        errors.append(FieldError(f"{path}.inputParameters.until", message, until))
    return errors


_TYPE_RULES: dict[str, Callable[[WorkflowTask, str, _Context], list[FieldError]]] = {
    "EVENT": _event_errors,
    "DECISION": _decision_errors,
    "SWITCH": _switch_errors,
    "DYNAMIC": _dynamic_errors,
    "FORK_JOIN_DYNAMIC": _dynamic_fork_errors,
    "HTTP": _http_errors,
    "FORK_JOIN": _fork_join_errors,
    "TERMINATE": _terminate_errors,
    "DO_WHILE": _do_while_errors,
    "SUB_WORKFLOW": _sub_workflow_errors,
    "JSON_JQ_TRANSFORM": _jq_errors,
    "INLINE": _inline_errors,
    "WAIT": _wait_errors,
}


# -- per-task rules --------------------------------------------------------------------------


def _identity_errors(task: WorkflowTask, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if _blank(task.name):
        message = "WorkflowTask name cannot be empty or null"
        errors.append(FieldError(f"{path}.name", message, task.name))
    if _blank(task.taskReferenceName):
        message = "WorkflowTask taskReferenceName name cannot be empty or null"
        errors.append(FieldError(f"{path}.taskReferenceName", message, task.taskReferenceName))
    return errors


def _task_number_errors(task: WorkflowTask, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if task.startDelay < 0:
        message = "must be greater than or equal to 0"
        errors.append(FieldError(f"{path}.startDelay", message, task.startDelay))
    if task.retryCount is not None and task.retryCount < 0:
        message = "must be greater than or equal to 0"
        errors.append(FieldError(f"{path}.retryCount", message, task.retryCount))
    if task.taskDefinition is not None:
        name = task.taskDefinition.name or task.name
        prefix = f"{path}.taskDefinition."
        errors.extend(_task_def_rule_errors(task.taskDefinition, name, prefix))
    return errors


def _type_errors(task: WorkflowTask, path: str, ctx: _Context) -> list[FieldError]:
    if task.type not in SUPPORTED_TASK_TYPES:
        message = (
            f"Task type {task.type} is not supported by Baton "
            f"(task: {_show(task.taskReferenceName)})"
        )
        return [FieldError(f"{path}.type", message, task.type)]
    rule = _TYPE_RULES.get(task.type)
    return rule(task, path, ctx) if rule else []


def _join_on_errors(node: _Node, ctx: _Context) -> list[FieldError]:
    task = node.task
    if task.type not in ("JOIN", "EXCLUSIVE_JOIN"):
        return []
    # After a dynamic fork the join waits on the generated tasks, whatever joinOn says.
    if node.previous is not None and node.previous.type == "FORK_JOIN_DYNAMIC":
        return []
    errors: list[FieldError] = []
    for j, ref in enumerate(task.joinOn):
        if ref not in ctx.refs:
            message = (
                f"joinOn: {ref} of {task.type} task: {_show(task.taskReferenceName)} "
                f"is not a task reference name in workflow: {_show(ctx.workflow_name)}"
            )
            errors.append(FieldError(f"{node.path}.joinOn[{j}]", message, ref))
    return errors


def _unique_ref_errors(nodes: list[_Node], workflow_name: str | None) -> list[FieldError]:
    errors: list[FieldError] = []
    seen: set[str] = set()
    for node in nodes:
        ref = node.task.taskReferenceName
        if _blank(ref):
            continue
        assert ref is not None
        if ref in seen:
            message = (
                f"taskReferenceName: {ref} should be unique across tasks for a given "
                f"workflowDefinition: {_show(workflow_name)}"
            )
            errors.append(FieldError(f"{node.path}.taskReferenceName", message, ref))
        seen.add(ref)
    return errors


# -- input references (ConstraintParamUtil) ------------------------------------------------

# Splits before each `${` not preceded by `$` and after each `}`, as ConstraintParamUtil does,
# so `$${...}` (escaped, literal) never forms a segment of its own.
_SEGMENTS = re.compile(r"(?=(?<!\$)\$\{)|(?<=\})")


def _expression_roots(value: str) -> list[str]:
    roots: list[str] = []
    for segment in _SEGMENTS.split(value):
        if not (segment.startswith("${") and segment.endswith("}")):
            continue
        path = segment[2:-1].strip()
        path = path.removeprefix("$.")  # `${$.workflow.x}` is the same as `${workflow.x}`
        root = re.split(r"[.\[]", path, maxsplit=1)[0].strip()
        if root:
            roots.append(root)
    return roots


def _string_reference_errors(
    key: str, value: str, path: str, task: WorkflowTask, ctx: _Context
) -> list[FieldError]:
    errors: list[FieldError] = []
    for root in _expression_roots(value):
        if root in _SYSTEM_ROOTS or root in ctx.refs:
            continue
        message = (
            f"taskReferenceName: {root} for given task: {_show(task.name)} input value: {key} "
            f"of input parameter: {value} is not defined in workflow definition."
        )
        errors.append(FieldError(path, message, value))
    return errors


def _value_reference_errors(
    key: str, value: object, path: str, task: WorkflowTask, ctx: _Context
) -> list[FieldError]:
    if isinstance(value, str):
        return _string_reference_errors(key, value, path, task, ctx)
    if isinstance(value, Mapping):
        return _map_reference_errors(value, path, task, ctx)
    if isinstance(value, list):
        errors: list[FieldError] = []
        for i, item in enumerate(value):
            # List items are reported under the key holding the list, as Conductor does.
            errors.extend(_value_reference_errors(key, item, f"{path}[{i}]", task, ctx))
        return errors
    return []


def _map_reference_errors(
    params: Mapping[Any, Any], path: str, task: WorkflowTask, ctx: _Context
) -> list[FieldError]:
    errors: list[FieldError] = []
    for key, value in params.items():
        errors.extend(_value_reference_errors(str(key), value, f"{path}.{key}", task, ctx))
    return errors


def _input_reference_errors(wd: WorkflowDef, ctx: _Context) -> list[FieldError]:
    # Conductor checks top-level tasks only (TaskReferenceNameUniqueConstraint).
    errors: list[FieldError] = []
    for i, task in enumerate(wd.tasks):
        path = f"tasks[{i}].inputParameters"
        errors.extend(_map_reference_errors(task.inputParameters, path, task, ctx))
    return errors


# -- WorkflowDef ---------------------------------------------------------------------------


def _workflow_field_errors(wd: WorkflowDef) -> list[FieldError]:
    errors = _name_errors(wd.name, "WorkflowDef")
    if not wd.tasks:
        errors.append(FieldError("tasks", "WorkflowTask list cannot be empty"))
    if wd.version < 1:
        message = f"WorkflowDef: {_show(wd.name)} version must be >= 1"
        errors.append(FieldError("version", message, wd.version))
    if wd.schemaVersion != 2:
        # Conductor's @Min/@Max template prints the bound, not the rejected value.
        message = "workflowDef schemaVersion: 2 is only supported"
        errors.append(FieldError("schemaVersion", message, wd.schemaVersion))
    if wd.timeoutSeconds < 0:
        message = f"WorkflowDef: {_show(wd.name)} timeoutSeconds must be >= 0"
        errors.append(FieldError("timeoutSeconds", message, wd.timeoutSeconds))
    return errors


def _node_errors(node: _Node, ctx: _Context) -> list[FieldError]:
    return (
        _identity_errors(node.task, node.path)
        + _task_number_errors(node.task, node.path)
        + _type_errors(node.task, node.path, ctx)
        + _join_on_errors(node, ctx)
    )


def workflow_def_errors(
    wd: WorkflowDef, task_defs: Mapping[str, TaskDef] | None = None
) -> list[FieldError]:
    """Every rule a WorkflowDef breaks; empty when it is valid.

    `task_defs` (registered definitions by name) lets HTTP / JSON_JQ_TRANSFORM / INLINE tasks
    take their required inputs from a TaskDef's inputTemplate, as Conductor allows.
    """
    nodes = list(_walk(wd.tasks, "tasks"))
    refs = frozenset(n.task.taskReferenceName for n in nodes if n.task.taskReferenceName)
    ctx = _Context(wd.name, refs, task_defs or {})
    errors = _workflow_field_errors(wd)
    for node in nodes:
        errors.extend(_node_errors(node, ctx))
    errors.extend(_unique_ref_errors(nodes, wd.name))
    errors.extend(_input_reference_errors(wd, ctx))
    return errors


def validate_workflow_def(wd: WorkflowDef, task_defs: Mapping[str, TaskDef] | None = None) -> None:
    errors = workflow_def_errors(wd, task_defs)
    if errors:
        raise ValidationFailed(errors)
