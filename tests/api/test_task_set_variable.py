"""SET_VARIABLE through the API: merging into the workflow variables, and the size limit."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.flows import run, simple, task_of, wf


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


def set_variable(ref: str, **inputs: Any) -> dict[str, Any]:
    return {
        "name": ref,
        "taskReferenceName": ref,
        "type": "SET_VARIABLE",
        "inputParameters": inputs,
    }


async def test_a_later_set_variable_overwrites_and_later_tasks_see_it(
    client: httpx.AsyncClient,
) -> None:
    tasks = [
        set_variable("first", n=1, keep="a"),
        set_variable("second", n="${workflow.variables.n}0"),
        simple("reader", inputParameters={"seen": "${workflow.variables}"}),
    ]
    body = await wf(client, await run(client, tasks))
    assert body["variables"] == {"n": "10", "keep": "a"}
    assert task_of(body, "reader")["inputData"]["seen"] == {"n": "10", "keep": "a"}


async def test_set_variable_has_no_output(client: httpx.AsyncClient) -> None:
    body = await wf(client, await run(client, [set_variable("sv", a=1)]))
    assert (body["tasks"][0]["status"], body["tasks"][0]["outputData"]) == ("COMPLETED", {})


async def test_workflow_output_can_read_the_variables(client: httpx.AsyncClient) -> None:
    tasks = [set_variable("sv", var="${workflow.input.var}")]
    outputs = {"variables": "${workflow.variables}"}
    body = await wf(
        client, await run(client, tasks, {"var": "var_test_value"}, outputParameters=outputs)
    )
    assert body["status"] == "COMPLETED"
    assert body["output"] == {"variables": {"var": "var_test_value"}}
