"""FORK_JOIN/JOIN, FORK_JOIN_DYNAMIC (simple and classic forms) and EXCLUSIVE_JOIN through
the API."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from tests.api.flows import drain, refs, run, simple, task_of, wf, work


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


async def test_join_output_leaves_out_branches_with_empty_output(
    client: httpx.AsyncClient,
) -> None:
    workflow_id = await run(client, fork_join())
    await work(client, "w_left")
    await work(client, "w_right1")
    await work(client, "w_right2", {"r": 2})
    join = task_of(await wf(client, workflow_id), "join")
    assert join["inputData"]["joinOn"] == ["left", "right2"]
    assert (join["status"], join["outputData"]) == ("COMPLETED", {"right2": {"r": 2}})


async def test_a_failed_branch_cancels_the_join_and_the_other_pending_branch(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/api/metadata/taskdefs", json=[{"name": "w_left", "retryCount": 0}])
    workflow_id = await run(client, fork_join())
    await work(client, "w_left", status="FAILED")
    body = await wf(client, workflow_id)
    assert body["status"] == "FAILED"
    statuses = {r: task_of(body, r)["status"] for r in ("left", "right1", "join")}
    assert statuses == {"left": "FAILED", "right1": "CANCELED", "join": "CANCELED"}
    assert "after" not in refs(body)


async def test_a_fork_not_followed_by_a_join_fails_the_workflow(client: httpx.AsyncClient) -> None:
    fork = fork_join()[0]
    body = await wf(client, await run(client, [fork, simple("not_a_join")]))
    assert body["status"] == "FAILED"
    assert (
        "Fork task definition is not followed by a join task.  Check the blueprint"
        in body["reasonForIncompletion"]
    )


async def test_dynamic_fork_records_the_forked_refs_on_the_fork_task(
    client: httpx.AsyncClient,
) -> None:
    tasks: list[dict[str, Any]] = [
        {
            "name": "dyn",
            "taskReferenceName": "dyn",
            "type": "FORK_JOIN_DYNAMIC",
            "inputParameters": {"forkTaskName": "w_item", "forkTaskInputs": [{"v": 1}, 2]},
        },
        {"name": "join", "taskReferenceName": "join", "type": "JOIN"},
    ]
    body = await wf(client, await run(client, tasks))
    fork = task_of(body, "dyn")
    assert (fork["taskType"], fork["status"]) == ("FORK", "COMPLETED")
    assert fork["inputData"]["forkedTasks"] == ["_w_item_0", "_w_item_1"]
    assert task_of(body, "join")["inputData"]["joinOn"] == ["_w_item_0", "_w_item_1"]
    assert task_of(body, "_w_item_1")["inputData"] == {"input": 2, "__index": 1}


async def test_dynamic_fork_over_an_empty_list_completes_at_once(
    client: httpx.AsyncClient,
) -> None:
    tasks: list[dict[str, Any]] = [
        {
            "name": "dyn",
            "taskReferenceName": "dyn",
            "type": "FORK_JOIN_DYNAMIC",
            "inputParameters": {"forkTaskName": "w_item", "forkTaskInputs": []},
        },
        {"name": "join", "taskReferenceName": "join", "type": "JOIN"},
    ]
    body = await wf(client, await run(client, tasks))
    assert body["status"] == "COMPLETED"
    assert refs(body) == ["dyn", "join"]
    assert task_of(body, "join")["inputData"]["joinOn"] == []


async def test_dynamic_fork_of_a_workflow_starts_one_child_per_input(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    child = {"name": "leaf", "version": 1, "tasks": [simple("l")]}
    assert (await client.post("/api/metadata/workflow", json=child)).status_code == 200
    tasks: list[dict[str, Any]] = [
        {
            "name": "dyn",
            "taskReferenceName": "dyn",
            "type": "FORK_JOIN_DYNAMIC",
            "inputParameters": {"forkTaskWorkflow": "leaf", "forkTaskInputs": [{"n": 1}, {"n": 2}]},
        },
        {"name": "join", "taskReferenceName": "join", "type": "JOIN"},
    ]
    workflow_id = await run(client, tasks)
    body = await wf(client, workflow_id)
    children = [task_of(body, f"_leaf_{i}") for i in (0, 1)]
    assert [t["taskType"] for t in children] == ["SUB_WORKFLOW", "SUB_WORKFLOW"]
    inputs = [(await wf(client, t["subWorkflowId"]))["input"] for t in children]
    assert inputs == [{"n": 1, "__index": 0}, {"n": 2, "__index": 1}]
    await work(client, "w_l")
    await work(client, "w_l")
    await drain(api_app)
    assert (await wf(client, workflow_id))["status"] == "COMPLETED"


def switch_then_exclusive_join(**join_extra: Any) -> list[dict[str, Any]]:
    switch = {
        "name": "route",
        "taskReferenceName": "route",
        "type": "SWITCH",
        "evaluatorType": "value-param",
        "expression": "kind",
        "inputParameters": {"kind": "${workflow.input.kind}"},
        "decisionCases": {"a": [simple("in_a")], "b": [simple("in_b")]},
        "defaultCase": [simple("in_d")],
    }
    xjoin = {
        "name": "xjoin",
        "taskReferenceName": "xjoin",
        "type": "EXCLUSIVE_JOIN",
        "joinOn": ["in_a", "in_b"],
        **join_extra,
    }
    return [switch, xjoin, simple("after")]


async def test_exclusive_join_falls_back_to_the_default_join_tasks(
    client: httpx.AsyncClient,
) -> None:
    tasks = switch_then_exclusive_join(defaultExclusiveJoinTask=["in_d"])
    workflow_id = await run(client, tasks, {"kind": "zzz"})
    await work(client, "w_in_d", {"picked": "default"})
    body = await wf(client, workflow_id)
    join = task_of(body, "xjoin")
    assert (join["status"], join["outputData"]) == ("COMPLETED", {"picked": "default"})
    assert "after" in refs(body)


async def test_a_failed_task_before_an_exclusive_join_fails_the_workflow(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/api/metadata/taskdefs", json=[{"name": "w_in_a", "retryCount": 0}])
    workflow_id = await run(client, switch_then_exclusive_join(), {"kind": "a"})
    await work(client, "w_in_a", status="FAILED")
    body = await wf(client, workflow_id)
    assert body["status"] == "FAILED"
    assert refs(body) == ["route", "in_a"]


async def test_retrying_a_failed_dynamic_fork_waits_again_for_every_forked_task(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/api/metadata/taskdefs", json=[{"name": "w_item", "retryCount": 0}])
    tasks: list[dict[str, Any]] = [
        {
            "name": "dyn",
            "taskReferenceName": "dyn",
            "type": "FORK_JOIN_DYNAMIC",
            "inputParameters": {"forkTaskName": "w_item", "forkTaskInputs": [{"v": 1}, {"v": 2}]},
        },
        {"name": "join", "taskReferenceName": "join", "type": "JOIN"},
        simple("after"),
    ]
    workflow_id = await run(client, tasks)
    await work(client, "w_item", status="FAILED")
    assert (await client.post(f"/api/workflow/{workflow_id}/retry")).status_code == 204
    body = await wf(client, workflow_id)
    join = task_of(body, "join")
    # The same JOIN waits again, still on the generated refs.
    assert [t["referenceTaskName"] for t in body["tasks"]].count("join") == 1
    assert (join["status"], join["inputData"]["joinOn"]) == (
        "IN_PROGRESS",
        ["_w_item_0", "_w_item_1"],
    )
    assert "after" not in refs(body)
    await work(client, "w_item", {"n": 1})
    await work(client, "w_item", {"n": 2})
    body = await wf(client, workflow_id)
    assert task_of(body, "join")["status"] == "COMPLETED"
    assert refs(body)[-1] == "after"
