"""System tasks through the API: control flow (SWITCH, DECISION, FORK/JOIN, dynamic fork,
DO_WHILE, EXCLUSIVE_JOIN, DYNAMIC), workflow-state tasks (SET_VARIABLE, TERMINATE, NOOP),
waiting (WAIT, HUMAN), and other workflows (SUB_WORKFLOW, START_WORKFLOW)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from app.clock import ManualClock
from tests.api.flows import drain, refs, run, simple, wf, work

# SWITCH / DECISION


async def test_switch_value_param_runs_the_matching_case(client: httpx.AsyncClient) -> None:
    switch = {
        "name": "route",
        "taskReferenceName": "route",
        "type": "SWITCH",
        "evaluatorType": "value-param",
        "expression": "kind",
        "inputParameters": {"kind": "${workflow.input.kind}"},
        "decisionCases": {"a": [simple("in_a")], "b": [simple("in_b")]},
        "defaultCase": [simple("in_default")],
    }
    workflow_id = await run(client, [switch, simple("after")], {"kind": "b"})
    body = await wf(client, workflow_id)
    assert refs(body) == ["route", "in_b"]
    assert body["tasks"][0]["outputData"] == {"evaluationResult": ["b"], "selectedCase": "b"}
    await work(client, "w_in_b")
    assert refs(await wf(client, workflow_id)) == ["route", "in_b", "after"]


async def test_switch_without_a_matching_case_runs_the_default(client: httpx.AsyncClient) -> None:
    switch = {
        "name": "route",
        "taskReferenceName": "route",
        "type": "SWITCH",
        "evaluatorType": "value-param",
        "expression": "kind",
        "inputParameters": {"kind": "${workflow.input.kind}"},
        "decisionCases": {"a": [simple("in_a")]},
        "defaultCase": [simple("in_default")],
    }
    workflow_id = await run(client, [switch], {"kind": "zzz"})
    assert refs(await wf(client, workflow_id)) == ["route", "in_default"]


async def test_switch_with_an_empty_matched_case_goes_straight_on(
    client: httpx.AsyncClient,
) -> None:
    switch = {
        "name": "route",
        "taskReferenceName": "route",
        "type": "SWITCH",
        "evaluatorType": "value-param",
        "expression": "kind",
        "inputParameters": {"kind": "x"},
        "decisionCases": {"x": []},
        "defaultCase": [simple("in_default")],
    }
    workflow_id = await run(client, [switch, simple("after")])
    assert refs(await wf(client, workflow_id)) == ["route", "after"]


async def test_switch_javascript_expression_picks_the_case(client: httpx.AsyncClient) -> None:
    switch = {
        "name": "route",
        "taskReferenceName": "route",
        "type": "SWITCH",
        "evaluatorType": "javascript",
        "expression": "$.n > 5 ? 'big' : 'small'",
        "inputParameters": {"n": "${workflow.input.n}"},
        "decisionCases": {"big": [simple("big")], "small": [simple("small")]},
    }
    workflow_id = await run(client, [switch], {"n": 9})
    assert refs(await wf(client, workflow_id)) == ["route", "big"]


async def test_decision_uses_the_default_for_an_empty_case(client: httpx.AsyncClient) -> None:
    decision = {
        "name": "d",
        "taskReferenceName": "d",
        "type": "DECISION",
        "caseValueParam": "c",
        "inputParameters": {"c": "x"},
        "decisionCases": {"x": []},
        "defaultCase": [simple("dflt")],
    }
    workflow_id = await run(client, [decision])
    body = await wf(client, workflow_id)
    assert refs(body) == ["d", "dflt"]
    assert body["tasks"][0]["outputData"] == {"caseOutput": ["x"]}


# FORK / JOIN


def fork_join() -> list[dict[str, Any]]:
    return [
        {
            "name": "fork",
            "taskReferenceName": "fork",
            "type": "FORK_JOIN",
            "forkTasks": [[simple("left")], [simple("right1"), simple("right2")]],
        },
        {"name": "join", "taskReferenceName": "join", "type": "JOIN", "joinOn": ["left", "right2"]},
        simple("after"),
    ]


async def test_fork_schedules_every_branch_and_a_join(client: httpx.AsyncClient) -> None:
    workflow_id = await run(client, fork_join())
    body = await wf(client, workflow_id)
    assert sorted(refs(body)) == ["fork", "join", "left", "right1"]
    fork = body["tasks"][0]
    assert (fork["taskType"], fork["status"]) == ("FORK", "COMPLETED")


async def test_join_completes_when_every_branch_is_done(client: httpx.AsyncClient) -> None:
    workflow_id = await run(client, fork_join())
    await work(client, "w_left", {"l": 1})
    await work(client, "w_right1")
    join = next(
        t for t in (await wf(client, workflow_id))["tasks"] if t["referenceTaskName"] == "join"
    )
    assert join["status"] == "IN_PROGRESS"
    await work(client, "w_right2", {"r": 2})
    body = await wf(client, workflow_id)
    join = next(t for t in body["tasks"] if t["referenceTaskName"] == "join")
    assert join["status"] == "COMPLETED"
    assert join["outputData"] == {"left": {"l": 1}, "right2": {"r": 2}}
    assert "after" in refs(body)


async def test_a_failed_branch_fails_the_workflow(client: httpx.AsyncClient) -> None:
    await client.post("/api/metadata/taskdefs", json=[{"name": "w_left", "retryCount": 0}])
    workflow_id = await run(client, fork_join())
    await work(client, "w_left", status="FAILED")
    body = await wf(client, workflow_id)
    assert body["status"] == "FAILED"
    assert all(t["status"] != "IN_PROGRESS" for t in body["tasks"])


async def test_an_optional_failed_branch_lets_the_join_finish(client: httpx.AsyncClient) -> None:
    await client.post("/api/metadata/taskdefs", json=[{"name": "w_left", "retryCount": 0}])
    tasks = fork_join()
    tasks[0]["forkTasks"][0][0]["optional"] = True
    workflow_id = await run(client, tasks)
    await work(client, "w_left", status="FAILED")
    await work(client, "w_right1")
    await work(client, "w_right2")
    body = await wf(client, workflow_id)
    join = next(t for t in body["tasks"] if t["referenceTaskName"] == "join")
    assert join["status"] == "COMPLETED_WITH_ERRORS"
    assert body["status"] == "RUNNING" and "after" in refs(body)


async def test_dynamic_fork_runs_one_task_per_input(client: httpx.AsyncClient) -> None:
    tasks: list[dict[str, Any]] = [
        {
            "name": "dyn",
            "taskReferenceName": "dyn",
            "type": "FORK_JOIN_DYNAMIC",
            "inputParameters": {
                "forkTaskName": "w_item",
                "forkTaskInputs": "${workflow.input.items}",
            },
        },
        {"name": "join", "taskReferenceName": "join", "type": "JOIN"},
    ]
    workflow_id = await run(client, tasks, {"items": [{"v": 1}, {"v": 2}]})
    for _ in range(2):
        task = await work(client, "w_item", {"ok": True})
        assert task["inputData"]["__index"] in (0, 1)
    body = await wf(client, workflow_id)
    assert body["status"] == "COMPLETED"
    assert set(body["tasks"][-1]["outputData"]) == {"_w_item_0", "_w_item_1"}


# DO_WHILE


async def test_do_while_over_items_runs_the_body_per_item(client: httpx.AsyncClient) -> None:
    loop = {
        "name": "loop",
        "taskReferenceName": "loop",
        "type": "DO_WHILE",
        "loopCondition": "false",
        "items": "${workflow.input.items}",
        "loopOver": [simple("body", inputParameters={"item": "${loop.output.loopItem}"})],
    }
    workflow_id = await run(client, [loop], {"items": ["x", "y", "z"]})
    seen = [(await work(client, "w_body", {"n": i}))["inputData"]["item"] for i in range(3)]
    assert seen == ["x", "y", "z"]
    body = await wf(client, workflow_id)
    assert body["status"] == "COMPLETED"
    assert [t["referenceTaskName"] for t in body["tasks"][1:]] == ["body__1", "body__2", "body__3"]
    assert body["tasks"][0]["outputData"]["iteration"] == 3
    assert body["tasks"][0]["outputData"]["2"] == {"body": {"n": 1}}


async def test_do_while_repeats_while_the_condition_holds(client: httpx.AsyncClient) -> None:
    loop = {
        "name": "loop",
        "taskReferenceName": "loop",
        "type": "DO_WHILE",
        "loopCondition": "if ($.loop['iteration'] < 2) { true; } else { false; }",
        "loopOver": [simple("step")],
    }
    workflow_id = await run(client, [loop, simple("after")])
    await work(client, "w_step")
    await work(client, "w_step")
    body = await wf(client, workflow_id)
    assert refs(body) == ["loop", "step__1", "step__2", "after"]
    assert body["tasks"][0]["status"] == "COMPLETED"


async def test_do_while_over_an_empty_list_completes_at_once(client: httpx.AsyncClient) -> None:
    loop = {
        "name": "loop",
        "taskReferenceName": "loop",
        "type": "DO_WHILE",
        "loopCondition": "false",
        "items": "${workflow.input.items}",
        "loopOver": [simple("body")],
    }
    workflow_id = await run(client, [loop], {"items": []})
    body = await wf(client, workflow_id)
    assert body["status"] == "COMPLETED"
    assert body["tasks"][0]["outputData"] == {"iteration": 0}


# workflow state


async def test_set_variable_merges_into_the_workflow_variables(client: httpx.AsyncClient) -> None:
    tasks = [
        {
            "name": "sv",
            "taskReferenceName": "sv",
            "type": "SET_VARIABLE",
            "inputParameters": {"token_age": 3, "who": "${workflow.input.who}"},
        }
    ]
    workflow_id = await run(client, tasks, {"who": "me"}, variables={"keep": 1})
    body = await wf(client, workflow_id)
    assert body["status"] == "COMPLETED"
    assert body["variables"] == {"keep": 1, "token_age": 3, "who": "me"}


async def test_terminate_ends_the_workflow_with_its_output(client: httpx.AsyncClient) -> None:
    tasks = [
        {
            "name": "stop",
            "taskReferenceName": "stop",
            "type": "TERMINATE",
            "inputParameters": {"terminationStatus": "COMPLETED", "workflowOutput": {"done": True}},
        },
        simple("never"),
    ]
    workflow_id = await run(client, tasks)
    body = await wf(client, workflow_id)
    assert body["status"] == "COMPLETED"
    assert body["output"] == {"done": True}
    assert refs(body) == ["stop"]


async def test_terminate_with_failed_fails_the_workflow_with_its_reason(
    client: httpx.AsyncClient,
) -> None:
    tasks = [
        {
            "name": "stop",
            "taskReferenceName": "stop",
            "type": "TERMINATE",
            "inputParameters": {"terminationStatus": "FAILED", "terminationReason": "no"},
        }
    ]
    body = await wf(client, await run(client, tasks))
    assert (body["status"], body["reasonForIncompletion"]) == ("FAILED", "no")


async def test_noop_completes_at_once(client: httpx.AsyncClient) -> None:
    body = await wf(
        client, await run(client, [{"name": "n", "taskReferenceName": "n", "type": "NOOP"}])
    )
    assert body["status"] == "COMPLETED"


# waiting


async def test_wait_with_a_duration_completes_when_the_time_comes(
    client: httpx.AsyncClient, api_app: FastAPI, clock: ManualClock
) -> None:
    tasks = [
        {
            "name": "pause",
            "taskReferenceName": "pause",
            "type": "WAIT",
            "inputParameters": {"duration": "30s"},
        }
    ]
    workflow_id = await run(client, tasks)
    assert await drain(api_app) == 0
    clock.advance(30_000)
    assert await drain(api_app) == 1
    assert (await wf(client, workflow_id))["status"] == "COMPLETED"


async def test_open_wait_is_completed_by_an_update_by_reference(client: httpx.AsyncClient) -> None:
    tasks = [{"name": "hold", "taskReferenceName": "hold", "type": "WAIT"}]
    workflow_id = await run(client, tasks)
    r = await client.post(f"/api/tasks/{workflow_id}/hold/COMPLETED", json={"by": "hand"})
    assert r.status_code == 200 and r.text
    body = await wf(client, workflow_id)
    assert (body["status"], body["output"]) == ("COMPLETED", {"by": "hand"})


async def test_human_task_waits_for_an_update(client: httpx.AsyncClient) -> None:
    workflow_id = await run(client, [{"name": "h", "taskReferenceName": "h", "type": "HUMAN"}])
    assert (await wf(client, workflow_id))["tasks"][0]["status"] == "IN_PROGRESS"
    await client.post(f"/api/tasks/{workflow_id}/h/COMPLETED", json={})
    assert (await wf(client, workflow_id))["status"] == "COMPLETED"


# other workflows


async def test_sub_workflow_completes_the_parent_task_with_the_child_output(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    child = {
        "name": "child",
        "version": 1,
        "tasks": [simple("c")],
        "outputParameters": {"r": "${c.output.r}"},
    }
    assert (await client.post("/api/metadata/workflow", json=child)).status_code == 200
    tasks = [
        {
            "name": "sub",
            "taskReferenceName": "sub",
            "type": "SUB_WORKFLOW",
            "subWorkflowParam": {"name": "child", "version": 1},
            "inputParameters": {"x": 1},
        }
    ]
    workflow_id = await run(client, tasks)
    sub = (await wf(client, workflow_id))["tasks"][0]
    child_id = sub["subWorkflowId"]
    child_body = await wf(client, child_id)
    assert (child_body["parentWorkflowId"], child_body["input"]) == (workflow_id, {"x": 1})
    await work(client, "w_c", {"r": 42})
    await drain(api_app)
    body = await wf(client, workflow_id)
    assert body["status"] == "COMPLETED"
    assert body["tasks"][0]["outputData"] == {"subWorkflowId": child_id, "r": 42}


async def test_terminating_the_parent_terminates_the_child(client: httpx.AsyncClient) -> None:
    child = {"name": "child", "version": 1, "tasks": [simple("c")]}
    await client.post("/api/metadata/workflow", json=child)
    tasks = [
        {
            "name": "sub",
            "taskReferenceName": "sub",
            "type": "SUB_WORKFLOW",
            "subWorkflowParam": {"name": "child"},
        }
    ]
    workflow_id = await run(client, tasks)
    child_id = (await wf(client, workflow_id))["tasks"][0]["subWorkflowId"]
    assert (await client.delete(f"/api/workflow/{workflow_id}")).status_code == 200
    assert (await wf(client, child_id))["status"] == "TERMINATED"


async def test_a_failed_child_fails_the_parent(client: httpx.AsyncClient, api_app: FastAPI) -> None:
    await client.post("/api/metadata/taskdefs", json=[{"name": "w_c", "retryCount": 0}])
    child = {"name": "child", "version": 1, "tasks": [simple("c")]}
    await client.post("/api/metadata/workflow", json=child)
    tasks = [
        {
            "name": "sub",
            "taskReferenceName": "sub",
            "type": "SUB_WORKFLOW",
            "subWorkflowParam": {"name": "child"},
        }
    ]
    workflow_id = await run(client, tasks)
    await work(client, "w_c", status="FAILED")
    await drain(api_app)
    body = await wf(client, workflow_id)
    assert body["status"] == "FAILED"
    assert "Sub workflow" in body["tasks"][0]["reasonForIncompletion"]


async def test_start_workflow_starts_another_and_completes(client: httpx.AsyncClient) -> None:
    other = {"name": "other", "version": 1, "tasks": [simple("o")]}
    await client.post("/api/metadata/workflow", json=other)
    tasks = [
        {
            "name": "sw",
            "taskReferenceName": "sw",
            "type": "START_WORKFLOW",
            "inputParameters": {"startWorkflow": {"name": "other", "input": {"k": 1}}},
        }
    ]
    body = await wf(client, await run(client, tasks))
    started = body["tasks"][0]["outputData"]["workflowId"]
    assert body["status"] == "COMPLETED"
    assert (await wf(client, started))["input"] == {"k": 1}


async def test_dynamic_task_runs_the_named_task(client: httpx.AsyncClient) -> None:
    await client.post("/api/metadata/taskdefs", json=[{"name": "chosen"}])
    tasks = [
        {
            "name": "dyn",
            "taskReferenceName": "dyn",
            "type": "DYNAMIC",
            "dynamicTaskNameParam": "taskToRun",
            "inputParameters": {"taskToRun": "${workflow.input.which}"},
        }
    ]
    workflow_id = await run(client, tasks, {"which": "chosen"})
    await work(client, "chosen")
    assert (await wf(client, workflow_id))["status"] == "COMPLETED"


async def test_dynamic_task_with_an_unknown_name_fails(client: httpx.AsyncClient) -> None:
    tasks = [
        {
            "name": "dyn",
            "taskReferenceName": "dyn",
            "type": "DYNAMIC",
            "dynamicTaskNameParam": "taskToRun",
            "inputParameters": {"taskToRun": "ghost"},
        }
    ]
    body = await wf(client, await run(client, tasks))
    assert body["status"] == "FAILED"
    assert "Cannot find task by name ghost" in body["reasonForIncompletion"]


async def test_retrying_a_failed_http_workflow_runs_the_http_task_again(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    from tests.conftest import free_port

    uri = f"http://127.0.0.1:{free_port()}/nothing-listens-here"
    tasks = [
        {
            "name": "call",
            "taskReferenceName": "call",
            "type": "HTTP",
            "inputParameters": {"uri": uri, "method": "GET", "connectionTimeOut": 500},
        }
    ]
    workflow_id = await run(client, tasks)
    await drain(api_app)
    assert (await wf(client, workflow_id))["status"] == "FAILED"
    assert (await client.post(f"/api/workflow/{workflow_id}/retry")).status_code == 204
    await drain(api_app)
    body = await wf(client, workflow_id)
    assert [t["status"] for t in body["tasks"]] == ["FAILED", "FAILED"]
    assert body["tasks"][1]["retriedTaskId"] == body["tasks"][0]["taskId"]
