"""More system-task contracts through the API: classic dynamic fork, EXCLUSIVE_JOIN,
DO_WHILE (keepLastN, a fork or a switch in the body), SET_VARIABLE's size limit, inline
sub-workflow definitions, INLINE, JSON_JQ_TRANSFORM, WAIT until, TERMINATE as TERMINATED and
START_WORKFLOW without a request."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from tests.api.flows import drain, refs, run, simple, wf, work


def task_of(body: dict[str, Any], ref: str) -> dict[str, Any]:
    found: dict[str, Any] = next(t for t in body["tasks"] if t["referenceTaskName"] == ref)
    return found


# FORK_JOIN_DYNAMIC (classic form)


def classic_dynamic_fork() -> list[dict[str, Any]]:
    return [
        {
            "name": "dyn",
            "taskReferenceName": "dyn",
            "type": "FORK_JOIN_DYNAMIC",
            "dynamicForkTasksParam": "dynamicTasks",
            "dynamicForkTasksInputParamName": "dynamicTasksInput",
            "inputParameters": {
                "dynamicTasks": "${workflow.input.tasks}",
                "dynamicTasksInput": "${workflow.input.inputs}",
            },
        },
        {"name": "join", "taskReferenceName": "join", "type": "JOIN"},
    ]


async def test_classic_dynamic_fork_runs_the_listed_tasks_with_their_inputs(
    client: httpx.AsyncClient,
) -> None:
    wf_input = {
        "tasks": [simple("da", "w_dyn"), simple("db", "w_dyn")],
        "inputs": {"da": {"v": "a"}, "db": {"v": "b"}},
    }
    workflow_id = await run(client, classic_dynamic_fork(), wf_input)
    body = await wf(client, workflow_id)
    assert sorted(refs(body)) == ["da", "db", "dyn", "join"]
    assert task_of(body, "join")["inputData"]["joinOn"] == ["da", "db"]
    seen = {}
    for _ in range(2):
        task = await work(client, "w_dyn", {"done": True})
        seen[task["referenceTaskName"]] = task["inputData"]["v"]
    assert seen == {"da": "a", "db": "b"}
    body = await wf(client, workflow_id)
    assert body["status"] == "COMPLETED"
    assert task_of(body, "join")["outputData"] == {"da": {"done": True}, "db": {"done": True}}


async def test_classic_dynamic_fork_with_non_map_inputs_fails_the_workflow(
    client: httpx.AsyncClient,
) -> None:
    wf_input = {"tasks": [simple("da", "w_dyn")], "inputs": ["not", "a", "map"]}
    body = await wf(client, await run(client, classic_dynamic_fork(), wf_input))
    assert body["status"] == "FAILED"
    assert "Input to the dynamically forked tasks is not a map" in (body["reasonForIncompletion"])


# EXCLUSIVE_JOIN


async def test_exclusive_join_takes_the_output_of_the_terminal_join_on_task(
    client: httpx.AsyncClient,
) -> None:
    switch = {
        "name": "route",
        "taskReferenceName": "route",
        "type": "SWITCH",
        "evaluatorType": "value-param",
        "expression": "kind",
        "inputParameters": {"kind": "${workflow.input.kind}"},
        "decisionCases": {"a": [simple("in_a")], "b": [simple("in_b")]},
    }
    xjoin = {
        "name": "xjoin",
        "taskReferenceName": "xjoin",
        "type": "EXCLUSIVE_JOIN",
        "joinOn": ["in_a", "in_b"],
    }
    workflow_id = await run(client, [switch, xjoin, simple("after")], {"kind": "b"})
    await work(client, "w_in_b", {"picked": "b"})
    body = await wf(client, workflow_id)
    join = task_of(body, "xjoin")
    assert (join["status"], join["outputData"]) == ("COMPLETED", {"picked": "b"})
    assert "after" in refs(body)


# DO_WHILE


async def test_do_while_keep_last_n_keeps_only_the_latest_iteration_outputs(
    client: httpx.AsyncClient,
) -> None:
    loop = {
        "name": "loop",
        "taskReferenceName": "loop",
        "type": "DO_WHILE",
        "inputParameters": {"keepLastN": 2},
        "loopCondition": "if ($.loop['iteration'] < 4) { true; } else { false; }",
        "loopOver": [simple("step")],
    }
    workflow_id = await run(client, [loop])
    for i in range(1, 5):
        await work(client, "w_step", {"n": i})
    body = await wf(client, workflow_id)
    assert body["status"] == "COMPLETED"
    output = task_of(body, "loop")["outputData"]
    assert output["iteration"] == 4
    assert {k: v for k, v in output.items() if k != "iteration"} == {
        "3": {"step": {"n": 3}},
        "4": {"step": {"n": 4}},
    }


async def test_fork_join_inside_do_while_joins_per_iteration(client: httpx.AsyncClient) -> None:
    loop = {
        "name": "loop",
        "taskReferenceName": "loop",
        "type": "DO_WHILE",
        "loopCondition": "if ($.loop['iteration'] < 2) { true; } else { false; }",
        "loopOver": [
            {
                "name": "fork",
                "taskReferenceName": "fork",
                "type": "FORK_JOIN",
                "forkTasks": [[simple("left")], [simple("right")]],
            },
            {
                "name": "join",
                "taskReferenceName": "join",
                "type": "JOIN",
                "joinOn": ["left", "right"],
            },
        ],
    }
    workflow_id = await run(client, [loop, simple("after")])
    await work(client, "w_left", {"l": 1})
    await work(client, "w_right", {"r": 1})
    body = await wf(client, workflow_id)
    join1 = task_of(body, "join__1")
    assert join1["status"] == "COMPLETED"
    assert join1["outputData"] == {"left__1": {"l": 1}, "right__1": {"r": 1}}
    assert {"left__2", "right__2", "join__2"} <= set(refs(body))
    assert task_of(body, "loop")["status"] == "IN_PROGRESS"
    await work(client, "w_left", {"l": 2})
    await work(client, "w_right", {"r": 2})
    body = await wf(client, workflow_id)
    assert task_of(body, "join__2")["status"] == "COMPLETED"
    assert task_of(body, "loop")["status"] == "COMPLETED"
    assert refs(body)[-1] == "after"


async def test_switch_inside_do_while_picks_a_case_per_iteration(
    client: httpx.AsyncClient,
) -> None:
    loop = {
        "name": "loop",
        "taskReferenceName": "loop",
        "type": "DO_WHILE",
        "loopCondition": "if ($.loop['iteration'] < 2) { true; } else { false; }",
        "loopOver": [
            {
                "name": "route",
                "taskReferenceName": "route",
                "type": "SWITCH",
                "evaluatorType": "javascript",
                "expression": "$.i == 1 ? 'first' : 'other'",
                "inputParameters": {"i": "${loop.output.iteration}"},
                "decisionCases": {"first": [simple("one")], "other": [simple("two")]},
            }
        ],
    }
    workflow_id = await run(client, [loop, simple("after")])
    await work(client, "w_one")
    await work(client, "w_two")
    body = await wf(client, workflow_id)
    assert refs(body) == ["loop", "route__1", "one__1", "route__2", "two__2", "after"]
    assert task_of(body, "route__2")["outputData"]["selectedCase"] == "other"
    assert task_of(body, "loop")["status"] == "COMPLETED"


# SET_VARIABLE


async def test_set_variable_over_the_size_limit_fails_terminally(
    client: httpx.AsyncClient,
) -> None:
    tasks = [
        {
            "name": "sv",
            "taskReferenceName": "sv",
            "type": "SET_VARIABLE",
            "inputParameters": {"big": "${workflow.input.big}"},
        }
    ]
    workflow_id = await run(client, tasks, {"big": "x" * (257 * 1024)}, variables={"keep": 1})
    body = await wf(client, workflow_id)
    task = body["tasks"][0]
    assert task["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert task["reasonForIncompletion"].startswith("The variables payload size: ")
    assert task["reasonForIncompletion"].endswith(
        f"of workflow: {workflow_id} is greater than the permissible limit: 256 kilobytes"
    )
    assert body["status"] == "FAILED"
    assert body["variables"] == {"keep": 1}


# SUB_WORKFLOW


async def test_sub_workflow_with_an_inline_definition_runs_it(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    child = {
        "name": "inline_child",
        "version": 1,
        "tasks": [simple("ic")],
        "outputParameters": {"r": "${ic.output.r}"},
    }
    tasks = [
        {
            "name": "sub",
            "taskReferenceName": "sub",
            "type": "SUB_WORKFLOW",
            "subWorkflowParam": {"name": "inline_child", "workflowDefinition": child},
            "inputParameters": {"x": 1},
        }
    ]
    workflow_id = await run(client, tasks)
    child_id = (await wf(client, workflow_id))["tasks"][0]["subWorkflowId"]
    child_body = await wf(client, child_id)
    assert (child_body["workflowName"], child_body["input"]) == ("inline_child", {"x": 1})
    await work(client, "w_ic", {"r": 7})
    await drain(api_app)
    body = await wf(client, workflow_id)
    assert body["status"] == "COMPLETED"
    assert body["tasks"][0]["outputData"] == {"subWorkflowId": child_id, "r": 7}


# INLINE


def inline(expression: str) -> dict[str, Any]:
    return {
        "name": "calc",
        "taskReferenceName": "calc",
        "type": "INLINE",
        "inputParameters": {
            "evaluatorType": "javascript",
            "expression": expression,
            "a": "${workflow.input.a}",
            "b": "${workflow.input.b}",
        },
    }


async def test_inline_task_computes_its_result(client: httpx.AsyncClient, api_app: FastAPI) -> None:
    workflow_id = await run(client, [inline("$.a + $.b")], {"a": 2, "b": 3})
    await drain(api_app)
    body = await wf(client, workflow_id)
    assert body["status"] == "COMPLETED"
    assert body["tasks"][0]["outputData"] == {"result": 5}


async def test_inline_script_error_fails_terminally(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    workflow_id = await run(client, [inline("$.a.no.such.thing")], {"a": 2, "b": 3})
    await drain(api_app)
    body = await wf(client, workflow_id)
    task = body["tasks"][0]
    assert task["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert task["reasonForIncompletion"]
    assert "error" in task["outputData"]
    assert body["status"] == "FAILED"


# JSON_JQ_TRANSFORM


async def test_json_jq_transform_gives_result_and_result_list(client: httpx.AsyncClient) -> None:
    tasks = [
        {
            "name": "jq",
            "taskReferenceName": "jq",
            "type": "JSON_JQ_TRANSFORM",
            "inputParameters": {
                "items": "${workflow.input.items}",
                "queryExpression": ".items[] | .n * 2",
            },
        }
    ]
    body = await wf(client, await run(client, tasks, {"items": [{"n": 1}, {"n": 2}]}))
    assert body["status"] == "COMPLETED"
    assert body["tasks"][0]["outputData"] == {"result": 2, "resultList": [2, 4]}


# WAIT


async def test_wait_until_a_past_time_completes_on_the_next_drain(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    tasks = [
        {
            "name": "pause",
            "taskReferenceName": "pause",
            "type": "WAIT",
            "inputParameters": {"until": "2000-01-01 00:00 UTC"},
        }
    ]
    workflow_id = await run(client, tasks)
    assert (await wf(client, workflow_id))["tasks"][0]["status"] == "IN_PROGRESS"
    assert await drain(api_app) == 1
    body = await wf(client, workflow_id)
    assert (body["status"], body["tasks"][0]["status"]) == ("COMPLETED", "COMPLETED")


# TERMINATE


async def test_terminate_with_terminated_ends_the_workflow_with_its_reason(
    client: httpx.AsyncClient,
) -> None:
    tasks = [
        {
            "name": "stop",
            "taskReferenceName": "stop",
            "type": "TERMINATE",
            "inputParameters": {"terminationStatus": "TERMINATED", "terminationReason": "enough"},
        },
        simple("never"),
    ]
    body = await wf(client, await run(client, tasks))
    assert (body["status"], body["reasonForIncompletion"]) == ("TERMINATED", "enough")
    assert refs(body) == ["stop"]
    assert body["tasks"][0]["status"] == "COMPLETED"


# START_WORKFLOW


async def test_start_workflow_without_a_request_fails(client: httpx.AsyncClient) -> None:
    tasks = [
        {
            "name": "sw",
            "taskReferenceName": "sw",
            "type": "START_WORKFLOW",
            "inputParameters": {"other": 1},
        }
    ]
    body = await wf(client, await run(client, tasks))
    task = body["tasks"][0]
    assert task["status"] == "FAILED"
    assert task["reasonForIncompletion"] == "Missing 'startWorkflow' in input data."
    assert body["status"] == "FAILED"
