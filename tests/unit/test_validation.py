"""Definition validation: Conductor's rules and messages for TaskDef and WorkflowDef."""

from __future__ import annotations

from typing import Any

import pytest

from app.errors import FieldError, ValidationFailed
from app.schemas.metadata import TaskDef, WorkflowDef
from app.services.validation import (
    SUPPORTED_TASK_TYPES,
    task_def_errors,
    validate_task_def,
    validate_workflow_def,
    workflow_def_errors,
)

Json = dict[str, Any]


def task(ref: str, type_: str = "SIMPLE", **fields: Any) -> Json:
    return {"name": ref, "taskReferenceName": ref, "type": type_, **fields}


def wf(*tasks: Json, **fields: Any) -> WorkflowDef:
    body: Json = {"name": "wf", "tasks": list(tasks) or [task("t1")], **fields}
    return WorkflowDef.model_validate(body)


def errors_of(*tasks: Json, **fields: Any) -> list[FieldError]:
    return workflow_def_errors(wf(*tasks, **fields))


def messages_of(*tasks: Json, **fields: Any) -> list[str]:
    return [e.message for e in errors_of(*tasks, **fields)]


def td(**fields: Any) -> TaskDef:
    return TaskDef.model_validate({"name": "td", **fields})


def td_messages(**fields: Any) -> list[str]:
    return [e.message for e in task_def_errors(td(**fields))]


def full_definition() -> WorkflowDef:
    """One valid definition using every supported task type."""
    tasks: list[Json] = [
        task(
            "worker",
            inputParameters={
                "a": "${workflow.input.a}",
                "own_id": "${CPEWF_TASK_ID}",
                "secret": "${workflow.secrets.token}",
                "literal": "$${not_a_task.output}",
                "later": "${jq.output.result}",
                "nested": {"deep": ["${http.output.response.body}", 7, {"k": None}]},
                "text": "id=${workflow.workflowId} by ${worker.output.who}",
            },
        ),
        task(
            "http", "HTTP", inputParameters={"http_request": {"uri": "http://x", "method": "GET"}}
        ),
        task("http_flat", "HTTP", inputParameters={"uri": "http://x/${workflow.input.id}"}),
        task("inline", "INLINE", inputParameters={"evaluatorType": "graaljs", "expression": "1"}),
        task("jq", "JSON_JQ_TRANSFORM", inputParameters={"queryExpression": ".a"}),
        task(
            "switch",
            "SWITCH",
            evaluatorType="value-param",
            expression="case",
            inputParameters={"case": "${workflow.input.case}"},
            decisionCases={"a": [task("in_case", "NOOP")]},
            defaultCase=[task("in_default", "SET_VARIABLE", inputParameters={"v": 1})],
        ),
        task(
            "decision",
            "DECISION",
            caseValueParam="c",
            decisionCases={"x": [task("human", "HUMAN")]},
        ),
        task(
            "fork",
            "FORK_JOIN",
            forkTasks=[[task("branch_a")], [task("branch_b", "WAIT", inputParameters={})]],
        ),
        task("join", "JOIN", joinOn=["branch_a", "branch_b"]),
        task(
            "dyn_fork",
            "FORK_JOIN_DYNAMIC",
            dynamicForkTasksParam="tasks",
            dynamicForkTasksInputParamName="inputs",
            inputParameters={"tasks": "${workflow.input.tasks}", "inputs": {}},
        ),
        task("dyn_join", "JOIN", joinOn=["generated_elsewhere"]),
        task(
            "simple_fork",
            "FORK_JOIN_DYNAMIC",
            inputParameters={"forkTaskName": "worker", "forkTaskInputs": [{"x": 1}]},
        ),
        task("simple_join", "JOIN"),
        task(
            "loop",
            "DO_WHILE",
            loopCondition="$.loop['iteration'] < 3",
            loopOver=[task("in_loop", "WAIT", inputParameters={"duration": "1 days 3 hours"})],
        ),
        task("sub", "SUB_WORKFLOW", subWorkflowParam={"name": "child", "version": 1}),
        task("start", "START_WORKFLOW", inputParameters={"startWorkflow": {"name": "other"}}),
        task("event", "EVENT", sink="conductor"),
        task("wait_until", "WAIT", inputParameters={"until": "2030-01-02 10:30 UTC"}),
        task("xjoin", "EXCLUSIVE_JOIN", joinOn=["in_case"], defaultExclusiveJoinTask=["human"]),
        task("dynamic", "DYNAMIC", dynamicTaskNameParam="taskName"),
        task("noop", "NOOP"),
        task("secret", "UPDATE_SECRET"),
        task("end", "TERMINATE", inputParameters={"terminationStatus": "COMPLETED"}),
    ]
    return WorkflowDef.model_validate({"name": "full", "tasks": tasks})


# -- the valid side ------------------------------------------------------------------------


def test_full_definition_with_every_supported_type_has_no_errors() -> None:
    assert workflow_def_errors(full_definition()) == []


def test_full_definition_really_uses_every_supported_type() -> None:
    assert {t.type for t in full_definition().all_tasks()} == SUPPORTED_TASK_TYPES


def test_validate_workflow_def_returns_quietly_for_a_valid_definition() -> None:
    validate_workflow_def(full_definition())


def test_default_task_def_with_a_name_has_no_errors() -> None:
    assert task_def_errors(td()) == []


def test_validate_task_def_returns_quietly_for_a_valid_definition() -> None:
    validate_task_def(td(timeoutSeconds=100, responseTimeoutSeconds=100, totalTimeoutSeconds=100))


# -- TaskDef -------------------------------------------------------------------------------


def test_validate_task_def_raises_validation_failed_with_every_error() -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_task_def(TaskDef.model_validate({"retryCount": -1}))
    assert [e.path for e in caught.value.errors] == ["name", "retryCount"]


@pytest.mark.parametrize("name", [None, "", "   "])
def test_task_def_without_a_name_is_rejected(name: str | None) -> None:
    errors = task_def_errors(TaskDef.model_validate({"name": name}))
    assert [(e.path, e.message) for e in errors] == [
        ("name", "TaskDef name cannot be null or empty")
    ]


def test_task_def_name_longer_than_255_characters_is_rejected() -> None:
    errors = task_def_errors(td(name="n" * 256))
    assert [e.path for e in errors] == ["name"]
    assert "255" in errors[0].message


def test_task_def_name_of_exactly_255_characters_is_accepted() -> None:
    assert task_def_errors(td(name="n" * 255)) == []


def test_negative_task_def_retry_count_is_rejected() -> None:
    errors = task_def_errors(td(retryCount=-1))
    assert [(e.path, e.message, e.invalid_value) for e in errors] == [
        ("retryCount", "TaskDef: td retryCount must be >= 0", -1)
    ]


def test_zero_task_def_retry_count_is_accepted() -> None:
    assert task_def_errors(td(retryCount=0)) == []


def test_response_timeout_below_one_second_is_rejected_with_conductors_message() -> None:
    assert td_messages(responseTimeoutSeconds=0) == [
        "TaskDef responseTimeoutSeconds: 0 should be minimum 1 second"
    ]


def test_negative_task_def_timeout_is_rejected() -> None:
    assert td_messages(timeoutSeconds=-1) == ["TaskDef: td timeoutSeconds must be >= 0"]


def test_response_timeout_above_timeout_is_rejected_with_conductors_message() -> None:
    errors = task_def_errors(td(name="slow", timeoutSeconds=10, responseTimeoutSeconds=20))
    assert [(e.path, e.message) for e in errors] == [
        (
            "responseTimeoutSeconds",
            "TaskDef: slow responseTimeoutSeconds: 20 must be less than timeoutSeconds: 10",
        )
    ]


def test_response_timeout_above_timeout_is_accepted_when_timeout_is_zero() -> None:
    assert td_messages(timeoutSeconds=0, responseTimeoutSeconds=9999) == []


def test_response_timeout_equal_to_timeout_is_accepted() -> None:
    assert td_messages(timeoutSeconds=500, responseTimeoutSeconds=500) == []


def test_total_timeout_below_timeout_is_rejected() -> None:
    messages = td_messages(timeoutSeconds=1000, responseTimeoutSeconds=1, totalTimeoutSeconds=900)
    assert messages == [
        "TaskDef: td timeoutSeconds: 1000 must be less than or equal to totalTimeoutSeconds: 900"
    ]


def test_zero_total_timeout_means_unset_and_is_accepted() -> None:
    assert td_messages(timeoutSeconds=1000, responseTimeoutSeconds=1, totalTimeoutSeconds=0) == []


def test_backoff_scale_factor_below_one_is_rejected() -> None:
    assert td_messages(backoffScaleFactor=0) == ["TaskDef: td backoffScaleFactor must be >= 1"]


def test_negative_rate_limit_per_frequency_is_rejected() -> None:
    assert td_messages(rateLimitPerFrequency=-1) == [
        "TaskDef: td rateLimitPerFrequency must be >= 0"
    ]


def test_rate_limit_frequency_below_one_second_is_rejected() -> None:
    assert td_messages(rateLimitFrequencyInSeconds=0) == [
        "TaskDef: td rateLimitFrequencyInSeconds must be >= 1"
    ]


def test_negative_concurrent_exec_limit_is_rejected() -> None:
    assert td_messages(concurrentExecLimit=-1) == ["TaskDef: td concurrentExecLimit must be >= 0"]


def test_zero_concurrent_exec_limit_is_accepted() -> None:
    assert td_messages(concurrentExecLimit=0) == []


@pytest.mark.parametrize(
    "field",
    ["retryDelaySeconds", "maxRetryDelaySeconds", "backoffJitterMs", "pollTimeoutSeconds"],
)
def test_other_negative_task_def_durations_are_rejected(field: str) -> None:
    assert td_messages(**{field: -1}) == [f"TaskDef: td {field} must be >= 0"]


# -- WorkflowDef fields --------------------------------------------------------------------


def test_empty_workflow_def_gives_conductors_two_messages() -> None:
    errors = workflow_def_errors(WorkflowDef.model_validate({}))
    assert [(e.path, e.message) for e in errors] == [
        ("name", "WorkflowDef name cannot be null or empty"),
        ("tasks", "WorkflowTask list cannot be empty"),
    ]


def test_validate_workflow_def_raises_validation_failed() -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_workflow_def(WorkflowDef.model_validate({"name": "x"}))
    assert [e.message for e in caught.value.errors] == ["WorkflowTask list cannot be empty"]


def test_workflow_name_longer_than_255_characters_is_rejected() -> None:
    errors = errors_of(name="w" * 256)
    assert [e.path for e in errors] == ["name"]
    assert "255" in errors[0].message


def test_workflow_version_below_one_is_rejected() -> None:
    errors = errors_of(version=0)
    assert [(e.path, e.message, e.invalid_value) for e in errors] == [
        ("version", "WorkflowDef: wf version must be >= 1", 0)
    ]


def test_schema_version_other_than_2_is_rejected_with_conductors_message() -> None:
    errors = errors_of(schemaVersion=1)
    assert [(e.path, e.message, e.invalid_value) for e in errors] == [
        ("schemaVersion", "workflowDef schemaVersion: 2 is only supported", 1)
    ]


def test_negative_workflow_timeout_is_rejected() -> None:
    assert messages_of(timeoutSeconds=-1) == ["WorkflowDef: wf timeoutSeconds must be >= 0"]


# -- task names and reference names --------------------------------------------------------


def test_task_without_name_is_rejected() -> None:
    errors = errors_of({"taskReferenceName": "r"})
    assert [(e.path, e.message) for e in errors] == [
        ("tasks[0].name", "WorkflowTask name cannot be empty or null")
    ]


def test_task_without_reference_name_is_rejected() -> None:
    errors = errors_of({"name": "n"})
    assert [(e.path, e.message) for e in errors] == [
        (
            "tasks[0].taskReferenceName",
            "WorkflowTask taskReferenceName name cannot be empty or null",
        )
    ]


def test_nested_task_without_name_is_reported_with_its_nested_path() -> None:
    fork = task(
        "fork", "FORK_JOIN", forkTasks=[[task("a")], [task("b"), {"taskReferenceName": "c"}]]
    )
    errors = errors_of(fork, task("join", "JOIN"))
    assert [e.path for e in errors] == ["tasks[0].forkTasks[1][1].name"]


def test_duplicate_top_level_reference_name_is_rejected() -> None:
    errors = errors_of(task("dup"), task("dup"))
    assert [(e.path, e.message, e.invalid_value) for e in errors] == [
        (
            "tasks[1].taskReferenceName",
            "taskReferenceName: dup should be unique across tasks for a given "
            "workflowDefinition: wf",
            "dup",
        )
    ]


def test_duplicate_reference_name_inside_fork_is_rejected() -> None:
    fork = task("fork", "FORK_JOIN", forkTasks=[[task("dup")], [task("dup")]])
    errors = errors_of(fork, task("join", "JOIN", joinOn=["dup"]))
    assert [e.path for e in errors] == ["tasks[0].forkTasks[1][0].taskReferenceName"]


def test_duplicate_reference_name_between_switch_case_and_default_is_rejected() -> None:
    switch = task(
        "sw",
        "SWITCH",
        evaluatorType="value-param",
        expression="c",
        decisionCases={"x": [task("dup")]},
        defaultCase=[task("dup")],
    )
    errors = errors_of(switch)
    assert [e.path for e in errors] == ["tasks[0].defaultCase[0].taskReferenceName"]


def test_duplicate_reference_name_between_decision_case_and_top_level_is_rejected() -> None:
    decision = task("d", "DECISION", caseValueParam="c", decisionCases={"x": [task("dup")]})
    errors = errors_of(decision, task("dup"))
    assert [e.path for e in errors] == ["tasks[1].taskReferenceName"]


def test_duplicate_reference_name_inside_loop_is_rejected() -> None:
    loop = task("loop", "DO_WHILE", loopCondition="false", loopOver=[task("dup"), task("dup")])
    errors = errors_of(loop)
    assert [e.path for e in errors] == ["tasks[0].loopOver[1].taskReferenceName"]


def test_decision_case_paths_name_the_case() -> None:
    decision = task("d", "DECISION", caseValueParam="c", decisionCases={"yes": [{"name": "n"}]})
    assert [e.path for e in errors_of(decision)] == [
        "tasks[0].decisionCases[yes][0].taskReferenceName"
    ]


# -- task types ----------------------------------------------------------------------------


def test_unknown_task_type_is_rejected() -> None:
    errors = errors_of(task("t", "MY_CUSTOM"))
    assert [(e.path, e.message, e.invalid_value) for e in errors] == [
        ("tasks[0].type", "Task type MY_CUSTOM is not supported by Baton (task: t)", "MY_CUSTOM")
    ]


@pytest.mark.parametrize("type_", ["KAFKA_PUBLISH", "LAMBDA"])
def test_kafka_publish_and_lambda_are_rejected_as_unsupported_by_baton(type_: str) -> None:
    assert messages_of(task("t", type_)) == [
        f"Task type {type_} is not supported by Baton (task: t)"
    ]


def test_unknown_type_of_a_nested_task_is_rejected() -> None:
    loop = task("loop", "DO_WHILE", loopCondition="false", loopOver=[task("k", "LAMBDA")])
    assert [e.path for e in errors_of(loop)] == ["tasks[0].loopOver[0].type"]


# -- task-level numbers --------------------------------------------------------------------


def test_negative_start_delay_is_rejected() -> None:
    errors = errors_of(task("t", startDelay=-1))
    assert [(e.path, e.invalid_value) for e in errors] == [("tasks[0].startDelay", -1)]


def test_negative_task_retry_count_is_rejected() -> None:
    errors = errors_of(task("t", retryCount=-1))
    assert [(e.path, e.invalid_value) for e in errors] == [("tasks[0].retryCount", -1)]


def test_zero_task_retry_count_is_accepted() -> None:
    assert errors_of(task("t", retryCount=0)) == []


def test_inline_task_definition_rules_are_checked_under_its_path() -> None:
    inline = {"timeoutSeconds": 10, "responseTimeoutSeconds": 20}
    errors = errors_of(task("t", taskDefinition=inline))
    assert [(e.path, e.message) for e in errors] == [
        (
            "tasks[0].taskDefinition.responseTimeoutSeconds",
            "TaskDef: t responseTimeoutSeconds: 20 must be less than timeoutSeconds: 10",
        )
    ]


def test_inline_task_definition_does_not_need_its_own_name() -> None:
    assert errors_of(task("t", taskDefinition={"retryCount": 0})) == []


# -- per-type required fields --------------------------------------------------------------


def test_event_without_sink_is_rejected() -> None:
    errors = errors_of(task("ev", "EVENT"))
    assert [(e.path, e.message) for e in errors] == [
        ("tasks[0].sink", "sink field is required for taskType: EVENT taskName: ev")
    ]


def test_decision_without_case_value_param_or_expression_is_rejected() -> None:
    assert messages_of(task("d", "DECISION", decisionCases={"a": [task("x")]})) == [
        "caseValueParam or caseExpression field is required for taskType: DECISION taskName: d"
    ]


def test_decision_with_case_expression_only_is_accepted() -> None:
    decision = task("d", "DECISION", caseExpression="'a'", decisionCases={"a": [task("x")]})
    assert errors_of(decision) == []


def test_decision_without_cases_is_rejected() -> None:
    assert messages_of(task("d", "DECISION", caseValueParam="c")) == [
        "decisionCases should have atleast one task for taskType: DECISION taskName: d"
    ]


def test_switch_without_evaluator_type_is_rejected() -> None:
    switch = task("s", "SWITCH", expression="c", decisionCases={"a": [task("x")]})
    assert messages_of(switch) == [
        "evaluatorType field is required for taskType: SWITCH taskName: s"
    ]


def test_switch_without_expression_is_rejected() -> None:
    switch = task("s", "SWITCH", evaluatorType="javascript", decisionCases={"a": [task("x")]})
    assert messages_of(switch) == ["expression field is required for taskType: SWITCH taskName: s"]


def test_switch_without_cases_is_rejected() -> None:
    switch = task("s", "SWITCH", evaluatorType="value-param", expression="c")
    assert messages_of(switch) == [
        "decisionCases should have atleast one task for taskType: SWITCH taskName: s"
    ]


def test_switch_with_unsupported_evaluator_is_rejected() -> None:
    switch = task(
        "s", "SWITCH", evaluatorType="python", expression="c", decisionCases={"a": [task("x")]}
    )
    errors = errors_of(switch)
    assert [(e.path, e.invalid_value) for e in errors] == [("tasks[0].evaluatorType", "python")]
    assert errors[0].message.startswith(
        "evaluatorType: python is not supported for taskType: SWITCH taskName: s"
    )


@pytest.mark.parametrize("evaluator", ["value-param", "javascript", "graaljs"])
def test_switch_accepts_each_supported_evaluator(evaluator: str) -> None:
    switch = task(
        "s", "SWITCH", evaluatorType=evaluator, expression="c", decisionCases={"a": [task("x")]}
    )
    assert errors_of(switch) == []


def test_dynamic_without_task_name_param_is_rejected() -> None:
    assert messages_of(task("d", "DYNAMIC")) == [
        "dynamicTaskNameParam field is required for taskType: DYNAMIC taskName: d"
    ]


def test_dynamic_fork_without_any_form_needs_both_classic_params() -> None:
    assert messages_of(task("f", "FORK_JOIN_DYNAMIC"), task("j", "JOIN")) == [
        "dynamicForkTasksParam field is required for taskType: FORK_JOIN_DYNAMIC taskName: f",
        "dynamicForkTasksInputParamName field is required for taskType: FORK_JOIN_DYNAMIC "
        "taskName: f",
    ]


def test_dynamic_fork_with_only_tasks_param_needs_the_input_param_name() -> None:
    fork = task("f", "FORK_JOIN_DYNAMIC", dynamicForkTasksParam="tasks")
    assert messages_of(fork, task("j", "JOIN")) == [
        "dynamicForkTasksInputParamName field is required for taskType: FORK_JOIN_DYNAMIC "
        "taskName: f"
    ]


def test_dynamic_fork_simple_form_with_fork_task_workflow_is_accepted() -> None:
    inputs = {"forkTaskWorkflow": "child", "forkTaskInputs": []}
    fork = task("f", "FORK_JOIN_DYNAMIC", inputParameters=inputs)
    assert errors_of(fork, task("j", "JOIN")) == []


def test_dynamic_fork_simple_form_without_fork_task_inputs_is_rejected() -> None:
    fork = task("f", "FORK_JOIN_DYNAMIC", inputParameters={"forkTaskName": "worker"})
    assert messages_of(fork, task("j", "JOIN")) == [
        "inputParameters.forkTaskInputs field is required for taskType: FORK_JOIN_DYNAMIC "
        "taskName: f"
    ]


def test_dynamic_fork_simple_form_without_fork_task_name_is_rejected() -> None:
    fork = task("f", "FORK_JOIN_DYNAMIC", inputParameters={"forkTaskInputs": []})
    errors = errors_of(fork, task("j", "JOIN"))
    assert [e.path for e in errors] == ["tasks[0].inputParameters.forkTaskName"]


def test_dynamic_fork_deprecated_single_param_is_accepted() -> None:
    fork = task("f", "FORK_JOIN_DYNAMIC", dynamicForkJoinTasksParam="dynamicTasks")
    assert errors_of(fork, task("j", "JOIN")) == []


def test_dynamic_fork_mixing_deprecated_and_classic_params_is_rejected() -> None:
    fork = task("f", "FORK_JOIN_DYNAMIC", dynamicForkJoinTasksParam="d", dynamicForkTasksParam="t")
    errors = errors_of(fork, task("j", "JOIN"))
    assert [e.path for e in errors] == ["tasks[0].dynamicForkJoinTasksParam"]


def test_http_without_request_or_uri_is_rejected() -> None:
    errors = errors_of(task("h", "HTTP", inputParameters={"method": "GET"}))
    assert [(e.path, e.message) for e in errors] == [
        (
            "tasks[0].inputParameters.http_request",
            "inputParameters.http_request or inputParameters.uri field is required for "
            "taskType: HTTP taskName: h",
        )
    ]


def test_http_with_uri_and_no_method_is_accepted() -> None:
    assert errors_of(task("h", "HTTP", inputParameters={"uri": "http://x"})) == []


def test_http_request_from_inline_task_definition_template_is_accepted() -> None:
    inline = {"inputTemplate": {"http_request": {"uri": "http://x", "method": "GET"}}}
    assert errors_of(task("h", "HTTP", taskDefinition=inline)) == []


def test_http_request_from_registered_task_definition_template_is_accepted() -> None:
    registered = TaskDef.model_validate({"name": "h", "inputTemplate": {"http_request": {}}})
    assert workflow_def_errors(wf(task("h", "HTTP")), {"h": registered}) == []


def test_fork_join_without_branches_is_rejected() -> None:
    assert messages_of(task("f", "FORK_JOIN"), task("j", "JOIN")) == [
        "forkTasks should have atleast one task for taskType: FORK_JOIN taskName: f"
    ]


def test_fork_join_with_an_empty_branch_is_rejected() -> None:
    fork = task("f", "FORK_JOIN", forkTasks=[[task("a")], []])
    errors = errors_of(fork, task("j", "JOIN", joinOn=["a"]))
    assert [e.path for e in errors] == ["tasks[0].forkTasks[1]"]


def test_terminate_without_status_is_rejected() -> None:
    errors = errors_of(task("t", "TERMINATE"))
    assert [(e.path, e.message) for e in errors] == [
        (
            "tasks[0].inputParameters.terminationStatus",
            "terminate task must have an terminationStatus parameter and must be set to "
            "COMPLETED, FAILED or TERMINATED, taskName: t",
        )
    ]


@pytest.mark.parametrize("status", ["RUNNING", "completed", "${workflow.input.status}", 1])
def test_terminate_with_a_status_that_is_not_a_literal_terminal_one_is_rejected(
    status: object,
) -> None:
    errors = errors_of(task("t", "TERMINATE", inputParameters={"terminationStatus": status}))
    assert [(e.path, e.invalid_value) for e in errors] == [
        ("tasks[0].inputParameters.terminationStatus", status)
    ]


@pytest.mark.parametrize("status", ["COMPLETED", "FAILED", "TERMINATED"])
def test_terminate_accepts_each_terminal_status(status: str) -> None:
    assert errors_of(task("t", "TERMINATE", inputParameters={"terminationStatus": status})) == []


def test_optional_terminate_is_rejected() -> None:
    inputs = {"terminationStatus": "FAILED"}
    errors = errors_of(task("t", "TERMINATE", optional=True, inputParameters=inputs))
    assert [(e.path, e.message) for e in errors] == [
        ("tasks[0].optional", "terminate task cannot be optional, taskName: t")
    ]


def test_do_while_without_condition_is_rejected() -> None:
    assert messages_of(task("l", "DO_WHILE", loopOver=[task("x")])) == [
        "loopCondition field is required for taskType: DO_WHILE taskName: l"
    ]


def test_do_while_without_body_is_rejected() -> None:
    assert messages_of(task("l", "DO_WHILE", loopCondition="false")) == [
        "loopOver field is required for taskType: DO_WHILE taskName: l"
    ]


def test_sub_workflow_without_params_is_rejected() -> None:
    assert messages_of(task("s", "SUB_WORKFLOW")) == [
        "subWorkflowParam field is required for taskType: SUB_WORKFLOW taskName: s"
    ]


def test_sub_workflow_without_name_or_inline_definition_is_rejected() -> None:
    errors = errors_of(task("s", "SUB_WORKFLOW", subWorkflowParam={"version": 1}))
    assert [e.path for e in errors] == ["tasks[0].subWorkflowParam.name"]


def test_sub_workflow_with_an_inline_definition_and_no_name_is_accepted() -> None:
    params = {"workflowDefinition": {"name": "inner", "tasks": [task("x")]}}
    assert errors_of(task("s", "SUB_WORKFLOW", subWorkflowParam=params)) == []


def test_json_jq_transform_without_query_expression_is_rejected() -> None:
    assert messages_of(task("j", "JSON_JQ_TRANSFORM")) == [
        "inputParameters.queryExpression field is required for taskType: JSON_JQ_TRANSFORM "
        "taskName: j"
    ]


def test_inline_without_expression_is_rejected() -> None:
    assert messages_of(task("i", "INLINE", inputParameters={"evaluatorType": "javascript"})) == [
        "inputParameters.expression field is required for taskType: INLINE taskName: i"
    ]


def test_inline_without_evaluator_type_defaults_to_javascript_and_is_accepted() -> None:
    assert errors_of(task("i", "INLINE", inputParameters={"expression": "1"})) == []


def test_inline_with_unsupported_evaluator_is_rejected() -> None:
    inputs = {"evaluatorType": "python", "expression": "1"}
    errors = errors_of(task("i", "INLINE", inputParameters=inputs))
    assert [(e.path, e.invalid_value) for e in errors] == [
        ("tasks[0].inputParameters.evaluatorType", "python")
    ]


@pytest.mark.parametrize("evaluator", ["javascript", "graaljs", "value-param"])
def test_inline_accepts_each_supported_evaluator(evaluator: str) -> None:
    inputs = {"evaluatorType": evaluator, "expression": "1"}
    assert errors_of(task("i", "INLINE", inputParameters=inputs)) == []


def test_update_secret_needs_nothing_at_definition_time() -> None:
    assert errors_of(task("s", "UPDATE_SECRET")) == []


# -- WAIT ----------------------------------------------------------------------------------


def test_wait_with_both_duration_and_until_is_rejected() -> None:
    inputs = {"duration": "10s", "until": "2030-01-01"}
    assert messages_of(task("w", "WAIT", inputParameters=inputs)) == [
        "Both 'duration' and 'until' specified. Please provide only one input"
    ]


@pytest.mark.parametrize(
    "duration", ["10s", "5m", "1h", "2d", "1 days 3 hours", "5 minutes", "1d 2h 3m 4s", "30", 30]
)
def test_wait_accepts_literal_durations_in_conductors_formats(duration: object) -> None:
    assert errors_of(task("w", "WAIT", inputParameters={"duration": duration})) == []


@pytest.mark.parametrize("duration", ["soon", "10 fortnights", "-5", "1.5h", -5])
def test_wait_with_an_unparseable_literal_duration_is_rejected(duration: object) -> None:
    errors = errors_of(task("w", "WAIT", inputParameters={"duration": duration}))
    assert [(e.path, e.invalid_value) for e in errors] == [
        ("tasks[0].inputParameters.duration", duration)
    ]
    assert (
        errors[0].message == f"Unable to parse duration: {duration} for taskType: WAIT taskName: w"
    )


def test_wait_duration_given_as_an_expression_is_not_parsed() -> None:
    inputs = {"duration": "${workflow.input.wait}"}
    assert errors_of(task("w", "WAIT", inputParameters=inputs)) == []


@pytest.mark.parametrize("until", ["2030-01-02", "2030-01-02 10:30", "2030-01-02 10:30 GMT+05:30"])
def test_wait_accepts_until_in_conductors_date_formats(until: str) -> None:
    assert errors_of(task("w", "WAIT", inputParameters={"until": until})) == []


def test_wait_with_an_unparseable_until_is_rejected() -> None:
    errors = errors_of(task("w", "WAIT", inputParameters={"until": "tomorrow"}))
    assert [(e.path, e.message) for e in errors] == [
        (
            "tasks[0].inputParameters.until",
            "Unable to parse date: tomorrow for taskType: WAIT taskName: w",
        )
    ]


# -- JOIN joinOn ---------------------------------------------------------------------------


def test_join_on_an_unknown_reference_is_rejected() -> None:
    fork = task("fork", "FORK_JOIN", forkTasks=[[task("a")], [task("b")]])
    errors = errors_of(fork, task("join", "JOIN", joinOn=["a", "ghost"]))
    assert [(e.path, e.message, e.invalid_value) for e in errors] == [
        (
            "tasks[1].joinOn[1]",
            "joinOn: ghost of JOIN task: join is not a task reference name in workflow: wf",
            "ghost",
        )
    ]


def test_exclusive_join_on_an_unknown_reference_is_rejected() -> None:
    errors = errors_of(task("x", "EXCLUSIVE_JOIN", joinOn=["ghost"]))
    assert [e.message for e in errors] == [
        "joinOn: ghost of EXCLUSIVE_JOIN task: x is not a task reference name in workflow: wf"
    ]


def test_join_after_a_dynamic_fork_is_not_checked_against_the_definition() -> None:
    fork = task("f", "FORK_JOIN_DYNAMIC", dynamicForkJoinTasksParam="d")
    assert errors_of(fork, task("j", "JOIN", joinOn=["made_at_run_time"])) == []


# -- input expression references -----------------------------------------------------------


def test_input_referring_to_an_undeclared_task_is_rejected_with_conductors_message() -> None:
    errors = errors_of(task("t1", inputParameters={"p": "${ghost.output.x}"}))
    assert [(e.path, e.message, e.invalid_value) for e in errors] == [
        (
            "tasks[0].inputParameters.p",
            "taskReferenceName: ghost for given task: t1 input value: p of input parameter: "
            "${ghost.output.x} is not defined in workflow definition.",
            "${ghost.output.x}",
        )
    ]


def test_input_referring_to_a_nested_task_is_accepted() -> None:
    fork = task("fork", "FORK_JOIN", forkTasks=[[task("a")]])
    after = task("after", inputParameters={"v": "${a.output.v}"})
    assert errors_of(fork, task("join", "JOIN", joinOn=["a"]), after) == []


@pytest.mark.parametrize(
    "value",
    ["${workflow.input.x}", "${workflow.secrets.key}", "${CPEWF_TASK_ID}", "${$.workflow.input.x}"],
)
def test_input_referring_to_workflow_or_system_parameters_is_accepted(value: str) -> None:
    assert errors_of(task("t1", inputParameters={"p": value})) == []


def test_escaped_expression_is_a_literal_and_is_not_checked() -> None:
    assert errors_of(task("t1", inputParameters={"p": "a $${ghost.output} b"})) == []


def test_undeclared_reference_inside_nested_maps_and_lists_is_rejected() -> None:
    inputs = {"outer": {"inner": ["ok", {"deep": "x ${ghost.output} y"}]}}
    errors = errors_of(task("t1", inputParameters=inputs))
    assert [e.path for e in errors] == ["tasks[0].inputParameters.outer.inner[1].deep"]
    assert "input value: deep of input parameter: x ${ghost.output} y" in errors[0].message


def test_list_items_are_reported_under_the_key_that_holds_the_list() -> None:
    errors = errors_of(task("t1", inputParameters={"items": ["${ghost.x}"]}))
    assert [e.path for e in errors] == ["tasks[0].inputParameters.items[0]"]
    assert "input value: items of input parameter: ${ghost.x}" in errors[0].message


def test_each_undeclared_reference_in_one_string_is_reported() -> None:
    errors = errors_of(
        task("t1", inputParameters={"p": "${ghost1.x}-${workflow.input.y}-${ghost2}"})
    )
    assert [e.message.split(" for ")[0] for e in errors] == [
        "taskReferenceName: ghost1",
        "taskReferenceName: ghost2",
    ]


def test_nested_tasks_inputs_are_not_checked_for_references() -> None:
    fork = task("fork", "FORK_JOIN", forkTasks=[[task("a", inputParameters={"p": "${ghost.x}"})]])
    assert errors_of(fork, task("join", "JOIN", joinOn=["a"])) == []
