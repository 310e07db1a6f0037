"""TERMINATE through the API: the workflow ends with the given status, output and reason."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.flows import refs, run, simple, wf


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


def terminate(**inputs: Any) -> dict[str, Any]:
    return {
        "name": "stop",
        "taskReferenceName": "stop",
        "type": "TERMINATE",
        "inputParameters": inputs,
    }


async def test_without_a_reason_the_reason_names_the_terminate_task(
    client: httpx.AsyncClient,
) -> None:
    body = await wf(client, await run(client, [terminate(terminationStatus="COMPLETED")]))
    task_id = body["tasks"][0]["taskId"]
    assert body["status"] == "COMPLETED"
    assert body["reasonForIncompletion"] == f"Workflow is COMPLETED by TERMINATE task: {task_id}"


async def test_a_non_map_workflow_output_is_wrapped_in_output(client: httpx.AsyncClient) -> None:
    tasks = [terminate(terminationStatus="COMPLETED", workflowOutput="${workflow.input.v}")]
    body = await wf(client, await run(client, tasks, {"v": [1, 2]}))
    assert body["tasks"][0]["outputData"] == {"output": [1, 2]}
    assert body["output"] == {"output": [1, 2]}


async def test_terminate_cancels_the_tasks_still_pending(client: httpx.AsyncClient) -> None:
    fork = {
        "name": "fork",
        "taskReferenceName": "fork",
        "type": "FORK_JOIN",
        "forkTasks": [[simple("slow")], [terminate(terminationStatus="TERMINATED")]],
    }
    join = {"name": "join", "taskReferenceName": "join", "type": "JOIN", "joinOn": ["slow"]}
    body = await wf(client, await run(client, [fork, join]))
    assert body["status"] == "TERMINATED"
    statuses = {t["referenceTaskName"]: t["status"] for t in body["tasks"]}
    assert statuses == {
        "fork": "COMPLETED",
        "slow": "CANCELED",
        "stop": "COMPLETED",
        "join": "CANCELED",
    }


async def test_terminate_as_failed_starts_the_failure_workflow(
    client: httpx.AsyncClient,
) -> None:
    handler = {"name": "on_failure", "version": 1, "tasks": [simple("cleanup")]}
    assert (await client.post("/api/metadata/workflow", json=handler)).status_code == 200
    tasks = [terminate(terminationStatus="FAILED", terminationReason="Early exit in terminate")]
    workflow_id = await run(client, tasks, {"k": 1}, failureWorkflow="on_failure")
    body = await wf(client, workflow_id)
    assert (body["status"], body["reasonForIncompletion"]) == ("FAILED", "Early exit in terminate")
    failure = await wf(client, body["output"]["conductor.failure_workflow"])
    assert failure["workflowName"] == "on_failure"
    assert failure["input"]["workflowId"] == workflow_id
    assert failure["input"]["failureTaskId"] == body["tasks"][0]["taskId"]
    assert failure["input"]["k"] == 1


async def test_terminate_as_completed_does_not_start_the_failure_workflow(
    client: httpx.AsyncClient,
) -> None:
    handler = {"name": "on_failure", "version": 1, "tasks": [simple("cleanup")]}
    await client.post("/api/metadata/workflow", json=handler)
    tasks = [terminate(terminationStatus="COMPLETED")]
    body = await wf(client, await run(client, tasks, failureWorkflow="on_failure"))
    assert body["status"] == "COMPLETED"
    assert "conductor.failure_workflow" not in body["output"]
