"""DYNAMIC through the API: the task named by an input runs as that (worker) task."""

from __future__ import annotations

import httpx

from tests.api.flows import run, task_defs, wf, work


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


async def test_the_dynamic_task_takes_the_type_and_retries_of_the_named_task(
    client: httpx.AsyncClient,
) -> None:
    await task_defs(client, {"name": "chosen", "retryCount": 1, "retryDelaySeconds": 0})
    tasks = [
        {
            "name": "dyn",
            "taskReferenceName": "dyn",
            "type": "DYNAMIC",
            "dynamicTaskNameParam": "taskToRun",
            "inputParameters": {"taskToRun": "chosen", "x": "${workflow.input.x}"},
        }
    ]
    workflow_id = await run(client, tasks, {"x": 5})
    polled = await work(client, "chosen", status="FAILED")
    assert (polled["taskType"], polled["referenceTaskName"]) == ("chosen", "dyn")
    assert polled["inputData"]["x"] == 5
    await work(client, "chosen")
    body = await wf(client, workflow_id)
    assert [t["status"] for t in body["tasks"]] == ["FAILED", "COMPLETED"]
    assert body["status"] == "COMPLETED"
