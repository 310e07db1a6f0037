"""START_WORKFLOW through the API: fire and forget, and bad requests."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.flows import run, simple, wf, work


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


def start_workflow(request: Any) -> list[dict[str, Any]]:
    return [
        {
            "name": "sw",
            "taskReferenceName": "sw",
            "type": "START_WORKFLOW",
            "inputParameters": {"startWorkflow": request},
        }
    ]


async def test_the_started_workflow_inherits_the_correlation_id(
    client: httpx.AsyncClient,
) -> None:
    other = {"name": "other", "version": 1, "tasks": [simple("o")]}
    await client.post("/api/metadata/workflow", json=other)
    await client.post(
        "/api/metadata/workflow",
        params={"overwrite": "true"},
        json={"name": "starter", "version": 1, "tasks": start_workflow({"name": "other"})},
    )
    r = await client.post("/api/workflow", json={"name": "starter", "correlationId": "corr-1"})
    body = await wf(client, r.text)
    started = await wf(client, body["tasks"][0]["outputData"]["workflowId"])
    assert started["correlationId"] == "corr-1"
    assert "parentWorkflowId" not in started


async def test_the_started_workflow_runs_on_after_the_starter_ends(
    client: httpx.AsyncClient,
) -> None:
    other = {"name": "other", "version": 1, "tasks": [simple("o")]}
    await client.post("/api/metadata/workflow", json=other)
    body = await wf(client, await run(client, start_workflow({"name": "other"})))
    assert body["status"] == "COMPLETED"
    started = body["tasks"][0]["outputData"]["workflowId"]
    await work(client, "w_o")
    assert (await wf(client, started))["status"] == "COMPLETED"


async def test_an_unknown_workflow_fails_with_a_validation_message(
    client: httpx.AsyncClient,
) -> None:
    body = await wf(client, await run(client, start_workflow({"name": "ghost"})))
    task = body["tasks"][0]
    assert task["status"] == "FAILED"
    assert task["reasonForIncompletion"].startswith("startWorkflow validation failed. ")
    assert "ghost" in task["reasonForIncompletion"]
    assert body["status"] == "FAILED"


async def test_an_inline_workflow_def_is_started_as_given(client: httpx.AsyncClient) -> None:
    inline = {"name": "adhoc", "version": 3, "tasks": [simple("x")]}
    body = await wf(
        client, await run(client, start_workflow({"name": "adhoc", "workflowDef": inline}))
    )
    started = await wf(client, body["tasks"][0]["outputData"]["workflowId"])
    assert (started["workflowName"], started["workflowVersion"]) == ("adhoc", 3)
