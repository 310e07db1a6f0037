"""Workflows of worker (SIMPLE) tasks through the API: start, poll, update, complete."""

from __future__ import annotations

from typing import Any

import httpx

from app.clock import ManualClock


def simple_flow(
    name: str = "flow", refs: tuple[str, ...] = ("a", "b"), **extra: Any
) -> dict[str, Any]:
    return {
        "name": name,
        "version": 1,
        "tasks": [
            {
                "name": f"task_{ref}",
                "taskReferenceName": ref,
                "type": "SIMPLE",
                "inputParameters": {"x": "${workflow.input.x}"},
            }
            for ref in refs
        ],
        **extra,
    }


async def register(client: httpx.AsyncClient, definition: dict[str, Any]) -> None:
    response = await client.post("/api/metadata/workflow", json=definition)
    assert response.status_code == 200, response.text


async def start(client: httpx.AsyncClient, name: str = "flow", **body: Any) -> str:
    response = await client.post(f"/api/workflow/{name}", json=body or {"x": 1})
    assert response.status_code == 200, response.text
    return response.text


async def poll(client: httpx.AsyncClient, task_type: str) -> dict[str, Any] | None:
    response = await client.get(f"/api/tasks/poll/{task_type}", params={"workerid": "w1"})
    if response.status_code == 204:
        return None
    assert response.status_code == 200, response.text
    task: dict[str, Any] = response.json()
    return task


async def complete(
    client: httpx.AsyncClient,
    task: dict[str, Any],
    output: dict[str, Any] | None = None,
    status: str = "COMPLETED",
    **extra: Any,
) -> httpx.Response:
    return await client.post(
        "/api/tasks",
        json={
            "workflowInstanceId": task["workflowInstanceId"],
            "taskId": task["taskId"],
            "status": status,
            "outputData": output or {},
            **extra,
        },
    )


async def get_wf(client: httpx.AsyncClient, workflow_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/workflow/{workflow_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_start_returns_the_id_as_plain_text(client: httpx.AsyncClient) -> None:
    await register(client, simple_flow())
    response = await client.post("/api/workflow/flow", json={"x": 1})
    assert response.headers["content-type"].startswith("text/plain")
    assert len(response.text) == 36


async def test_first_task_is_scheduled_with_resolved_input(client: httpx.AsyncClient) -> None:
    await register(client, simple_flow())
    wf = await get_wf(client, await start(client, x=42))
    assert wf["status"] == "RUNNING"
    [task] = wf["tasks"]
    assert (task["referenceTaskName"], task["status"], task["taskType"]) == (
        "a",
        "SCHEDULED",
        "task_a",
    )
    assert task["inputData"] == {"x": 42}


async def test_poll_hands_out_the_task_in_progress(client: httpx.AsyncClient) -> None:
    await register(client, simple_flow())
    workflow_id = await start(client)
    task = await poll(client, "task_a")
    assert task is not None
    assert (task["workflowInstanceId"], task["status"], task["workerId"]) == (
        workflow_id,
        "IN_PROGRESS",
        "w1",
    )
    assert task["pollCount"] == 1


async def test_poll_of_an_empty_queue_is_204(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/tasks/poll/nothing")).status_code == 204


async def test_batch_poll_of_an_empty_queue_is_an_empty_list(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/tasks/poll/batch/nothing", params={"timeout": 0})
    assert (response.status_code, response.json()) == (200, [])


async def test_a_task_is_handed_out_once(client: httpx.AsyncClient) -> None:
    await register(client, simple_flow())
    await start(client)
    assert await poll(client, "task_a") is not None
    assert await poll(client, "task_a") is None


async def test_completing_every_task_completes_the_workflow(client: httpx.AsyncClient) -> None:
    await register(client, simple_flow())
    workflow_id = await start(client)
    for task_type in ("task_a", "task_b"):
        task = await poll(client, task_type)
        assert task is not None
        response = await complete(client, task, {"from": task_type})
        assert (response.status_code, response.text) == (200, task["taskId"])
    wf = await get_wf(client, workflow_id)
    assert wf["status"] == "COMPLETED"
    assert wf["output"] == {"from": "task_b"}
    assert [t["status"] for t in wf["tasks"]] == ["COMPLETED", "COMPLETED"]


async def test_output_parameters_are_resolved_at_completion(client: httpx.AsyncClient) -> None:
    await register(client, simple_flow(refs=("a",), outputParameters={"got": "${a.output.v}"}))
    workflow_id = await start(client)
    task = await poll(client, "task_a")
    assert task is not None
    await complete(client, task, {"v": [1, 2]})
    assert (await get_wf(client, workflow_id))["output"] == {"got": [1, 2]}


async def test_next_task_sees_the_previous_output(client: httpx.AsyncClient) -> None:
    definition = simple_flow()
    definition["tasks"][1]["inputParameters"] = {"prev": "${a.output.value}"}
    await register(client, definition)
    await start(client)
    task = await poll(client, "task_a")
    assert task is not None
    await complete(client, task, {"value": "hello"})
    nxt = await poll(client, "task_b")
    assert nxt is not None and nxt["inputData"] == {"prev": "hello"}


async def test_failed_task_is_retried_as_a_new_task(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await client.post(
        "/api/metadata/taskdefs", json=[{"name": "task_a", "retryCount": 1, "retryDelaySeconds": 0}]
    )
    await register(client, simple_flow(refs=("a",)))
    workflow_id = await start(client)
    first = await poll(client, "task_a")
    assert first is not None
    await complete(client, first, status="FAILED", reasonForIncompletion="boom")
    second = await poll(client, "task_a")
    assert second is not None
    assert (second["retryCount"], second["retriedTaskId"]) == (1, first["taskId"])
    wf = await get_wf(client, workflow_id)
    assert [t["status"] for t in wf["tasks"]] == ["FAILED", "IN_PROGRESS"]
    assert wf["tasks"][0]["retried"] is True


async def test_retry_waits_for_the_retry_delay(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await client.post(
        "/api/metadata/taskdefs",
        json=[{"name": "task_a", "retryCount": 1, "retryDelaySeconds": 30}],
    )
    await register(client, simple_flow(refs=("a",)))
    await start(client)
    first = await poll(client, "task_a")
    assert first is not None
    await complete(client, first, status="FAILED")
    assert await poll(client, "task_a") is None
    clock.advance(30_000)
    assert await poll(client, "task_a") is not None


async def test_exhausted_retries_fail_the_workflow_with_conductors_reason(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/api/metadata/taskdefs", json=[{"name": "task_a", "retryCount": 0}])
    await register(client, simple_flow(refs=("a", "b")))
    workflow_id = await start(client)
    task = await poll(client, "task_a")
    assert task is not None
    await complete(client, task, status="FAILED", reasonForIncompletion="worker broke")
    wf = await get_wf(client, workflow_id)
    assert wf["status"] == "FAILED"
    assert wf["reasonForIncompletion"] == (
        f"Task {task['taskId']} failed with status: FAILED and reason: 'worker broke'"
    )
    assert wf["failedReferenceTaskNames"] == ["a"]


async def test_terminal_error_is_not_retried(client: httpx.AsyncClient) -> None:
    await client.post("/api/metadata/taskdefs", json=[{"name": "task_a", "retryCount": 3}])
    await register(client, simple_flow(refs=("a",)))
    workflow_id = await start(client)
    task = await poll(client, "task_a")
    assert task is not None
    await complete(client, task, status="FAILED_WITH_TERMINAL_ERROR")
    assert (await get_wf(client, workflow_id))["status"] == "FAILED"


async def test_optional_task_failure_lets_the_workflow_go_on(client: httpx.AsyncClient) -> None:
    await client.post("/api/metadata/taskdefs", json=[{"name": "task_a", "retryCount": 0}])
    definition = simple_flow()
    definition["tasks"][0]["optional"] = True
    await register(client, definition)
    workflow_id = await start(client)
    task = await poll(client, "task_a")
    assert task is not None
    await complete(client, task, status="FAILED")
    wf = await get_wf(client, workflow_id)
    assert wf["tasks"][0]["status"] == "COMPLETED_WITH_ERRORS"
    assert wf["tasks"][1]["status"] == "SCHEDULED"


async def test_in_progress_update_requeues_after_the_callback(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await register(client, simple_flow(refs=("a",)))
    await start(client)
    task = await poll(client, "task_a")
    assert task is not None
    await complete(client, task, {"step": 1}, status="IN_PROGRESS", callbackAfterSeconds=10)
    assert await poll(client, "task_a") is None
    clock.advance(10_000)
    again = await poll(client, "task_a")
    assert again is not None and again["pollCount"] == 2 and again["outputData"] == {"step": 1}


async def test_silent_worker_loses_the_task_after_the_response_timeout(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await client.post(
        "/api/metadata/taskdefs",
        json=[
            {"name": "task_a", "responseTimeoutSeconds": 5, "retryCount": 1, "retryDelaySeconds": 0}
        ],
    )
    await register(client, simple_flow(refs=("a",)))
    workflow_id = await start(client)
    first = await poll(client, "task_a")
    assert first is not None
    clock.advance(5_000)
    assert (await client.put(f"/api/workflow/decide/{workflow_id}")).status_code == 200
    wf = await get_wf(client, workflow_id)
    assert wf["tasks"][0]["status"] == "TIMED_OUT"
    assert await poll(client, "task_a") is not None


async def test_update_of_unknown_task_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/tasks", json={"workflowInstanceId": "w", "taskId": "nope", "status": "COMPLETED"}
    )
    assert response.status_code == 404
    assert response.json()["message"] == "No such task found by id: nope"


async def test_a_result_naming_another_workflow_still_updates_its_task(
    client: httpx.AsyncClient,
) -> None:
    await register(client, simple_flow())
    first = await start(client)
    other = await start(client)
    task = await poll(client, "task_a")
    assert task is not None
    owner = task["workflowInstanceId"]
    named = other if owner == first else first
    response = await complete(client, {**task, "workflowInstanceId": named})
    assert response.status_code == 200, response.text
    done = [t for t in (await get_wf(client, owner))["tasks"] if t["status"] == "COMPLETED"]
    assert [t["taskId"] for t in done] == [task["taskId"]]
    assert all(t["status"] == "SCHEDULED" for t in (await get_wf(client, named))["tasks"])


async def test_a_known_task_naming_an_unknown_workflow_is_updated(
    client: httpx.AsyncClient,
) -> None:
    await register(client, simple_flow())
    workflow_id = await start(client)
    task = await poll(client, "task_a")
    assert task is not None
    response = await complete(client, {**task, "workflowInstanceId": "no-such-workflow"})
    assert response.status_code == 200, response.text
    statuses = [t["status"] for t in (await get_wf(client, workflow_id))["tasks"]]
    assert statuses[0] == "COMPLETED"


async def test_empty_task_result_is_400_with_both_messages(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/tasks", json={})
    assert response.status_code == 400
    messages = {e["message"] for e in response.json()["validationErrors"]}
    assert {"Workflow Id cannot be null or empty", "Task ID cannot be null or empty"} <= messages


async def test_unknown_workflow_is_404_with_conductors_message(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/workflow/w123")
    assert response.status_code == 404
    assert response.json()["message"] == "No such workflow found by id: w123"


async def test_starting_an_unknown_workflow_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/workflow/ghost", json={})
    assert response.status_code == 404
    assert response.json()["message"] == "No such workflow found by name: ghost, version: null"


async def test_long_poll_over_five_seconds_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/tasks/poll/batch/x", params={"timeout": 6000})
    assert response.status_code == 400
    assert response.json()["message"] == "Long Poll Timeout value cannot be more than 5 seconds"
