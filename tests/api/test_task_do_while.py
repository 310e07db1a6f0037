"""DO_WHILE through the API: iterations and their refs, list iteration, keepLastN, forks
and switches in the body, and failures."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.flows import refs, run, simple, task_of, wf, work


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


def counted_loop(condition: str, *body: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "loop",
        "taskReferenceName": "loop",
        "type": "DO_WHILE",
        "loopCondition": condition,
        "loopOver": list(body) or [simple("step")],
    }


async def test_body_tasks_carry_their_iteration_and_later_tasks_iteration_zero(
    client: httpx.AsyncClient,
) -> None:
    loop = counted_loop("if ($.loop['iteration'] < 2) { true; } else { false; }")
    workflow_id = await run(client, [loop, simple("after")])
    await work(client, "w_step")
    await work(client, "w_step")
    body = await wf(client, workflow_id)
    assert [(t["referenceTaskName"], t["iteration"]) for t in body["tasks"][1:]] == [
        ("step__1", 1),
        ("step__2", 2),
        ("after", 0),
    ]


async def test_a_numeric_loop_condition_holds_while_it_is_positive(
    client: httpx.AsyncClient,
) -> None:
    loop = counted_loop("3 - $.loop['iteration']")
    workflow_id = await run(client, [loop])
    for _ in range(3):
        await work(client, "w_step")
    body = await wf(client, workflow_id)
    assert body["status"] == "COMPLETED"
    assert task_of(body, "loop")["outputData"]["iteration"] == 3


async def test_the_loop_condition_sees_the_latest_body_outputs(client: httpx.AsyncClient) -> None:
    loop = counted_loop("$.step['more'] == true")
    workflow_id = await run(client, [loop])
    await work(client, "w_step", {"more": True})
    await work(client, "w_step", {"more": False})
    body = await wf(client, workflow_id)
    assert body["status"] == "COMPLETED"
    assert refs(body) == ["loop", "step__1", "step__2"]


async def test_a_loop_condition_error_fails_the_loop_terminally(
    client: httpx.AsyncClient,
) -> None:
    loop = counted_loop("$.nothing.here > 1")
    workflow_id = await run(client, [loop, simple("after")])
    await work(client, "w_step")
    body = await wf(client, workflow_id)
    assert body["status"] == "FAILED"
    failed = task_of(body, "loop")
    assert failed["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert failed["reasonForIncompletion"]
    assert "after" not in refs(body)


async def test_a_failed_body_task_fails_the_workflow(client: httpx.AsyncClient) -> None:
    await client.post("/api/metadata/taskdefs", json=[{"name": "w_step", "retryCount": 0}])
    loop = counted_loop("true")
    workflow_id = await run(client, [loop, simple("after")])
    await work(client, "w_step", status="FAILED")
    body = await wf(client, workflow_id)
    assert body["status"] == "FAILED"
    assert task_of(body, "step__1")["status"] == "FAILED"
    # The body task's failure ends the workflow first; the loop is cancelled with it.
    assert task_of(body, "loop")["status"] == "CANCELED"
    assert "after" not in refs(body)


async def test_retrying_a_failed_loop_goes_on_from_the_failed_iteration(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/api/metadata/taskdefs", json=[{"name": "w_step", "retryCount": 0}])
    loop = counted_loop("if ($.loop['iteration'] < 3) { true; } else { false; }")
    workflow_id = await run(client, [loop, simple("after")])
    await work(client, "w_step", {"n": 1})
    await work(client, "w_step", status="FAILED")
    assert (await client.post(f"/api/workflow/{workflow_id}/retry")).status_code == 204
    body = await wf(client, workflow_id)
    assert [t["referenceTaskName"] for t in body["tasks"]].count("loop") == 1
    assert task_of(body, "loop")["status"] == "IN_PROGRESS"
    assert (task_of(body, "step__2")["status"], task_of(body, "step__2")["iteration"]) == (
        "SCHEDULED",
        2,
    )
    await work(client, "w_step", {"n": 2})
    await work(client, "w_step", {"n": 3})
    body = await wf(client, workflow_id)
    output = task_of(body, "loop")["outputData"]
    assert task_of(body, "loop")["status"] == "COMPLETED"
    assert {k: output[k] for k in ("1", "2", "3")} == {
        "1": {"step": {"n": 1}},
        "2": {"step": {"n": 2}},
        "3": {"step": {"n": 3}},
    }
    assert refs(body)[-1] == "after"
