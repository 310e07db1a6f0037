"""Workflow operations through /api/workflow and /api/workflow/bulk: terminate, pause,
resume, retry, restart, rerun, skip, reset callbacks, remove, the read endpoints, the
StartWorkflowRequest form, idempotency, synchronous execute, failure workflows and timeouts,
with Conductor's status codes and messages."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.clock import ManualClock
from tests.api.flows import flow, register, task_defs

Json = dict[str, Any]


# -- helpers ------------------------------------------------------------------------------


async def start(client: httpx.AsyncClient, name: str = "flow", **workflow_input: Any) -> str:
    response = await client.post(f"/api/workflow/{name}", json=workflow_input or {"x": 1})
    assert response.status_code == 200, response.text
    return response.text


async def poll(client: httpx.AsyncClient, task_type: str, **params: Any) -> Json | None:
    response = await client.get(f"/api/tasks/poll/{task_type}", params={"workerid": "w1", **params})
    if response.status_code == 204:
        return None
    assert response.status_code == 200, response.text
    task: Json = response.json()
    return task


async def update(
    client: httpx.AsyncClient,
    task: Json,
    status: str = "COMPLETED",
    output: Json | None = None,
    **extra: Any,
) -> None:
    response = await client.post(
        "/api/tasks",
        json={
            "workflowInstanceId": task["workflowInstanceId"],
            "taskId": task["taskId"],
            "status": status,
            "outputData": output or {},
            **extra,
        },
    )
    assert response.status_code == 200, response.text


async def work(
    client: httpx.AsyncClient,
    task_type: str,
    status: str = "COMPLETED",
    output: Json | None = None,
    **extra: Any,
) -> Json:
    """Poll one task of a type and report a result for it; returns the polled task."""
    task = await poll(client, task_type)
    assert task is not None, f"nothing to poll for {task_type}"
    await update(client, task, status, output, **extra)
    return task


async def get_wf(client: httpx.AsyncClient, workflow_id: str, **params: Any) -> Json:
    response = await client.get(f"/api/workflow/{workflow_id}", params=params)
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


async def failed_workflow(client: httpx.AsyncClient) -> str:
    """A FAILED run of `flow` (a -> b): `a` failed with no retries left."""
    await task_defs(client, {"name": "task_a", "retryCount": 0})
    await register(client, flow())
    workflow_id = await start(client)
    await work(client, "task_a", "FAILED", reasonForIncompletion="boom")
    assert (await get_wf(client, workflow_id))["status"] == "FAILED"
    return workflow_id


async def completed_workflow(client: httpx.AsyncClient, name: str = "flow") -> str:
    """A COMPLETED run of `flow` (a -> b)."""
    await register(client, flow(name))
    workflow_id = await start(client, name)
    await work(client, "task_a", output={"from": "a"})
    await work(client, "task_b", output={"from": "b"})
    assert (await get_wf(client, workflow_id))["status"] == "COMPLETED"
    return workflow_id


def error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status
    message: str = body["message"]
    return message


def statuses(wf: Json) -> list[tuple[str, str]]:
    return [(t["referenceTaskName"], t["status"]) for t in wf["tasks"]]


# -- terminate ----------------------------------------------------------------------------


async def test_terminate_keeps_the_reason_and_cancels_pending_tasks(
    client: httpx.AsyncClient,
) -> None:
    await register(client, flow())
    workflow_id = await start(client)
    response = await client.delete(f"/api/workflow/{workflow_id}", params={"reason": "enough"})
    assert response.status_code == 200, response.text
    wf = await get_wf(client, workflow_id)
    assert (wf["status"], wf["reasonForIncompletion"]) == ("TERMINATED", "enough")
    assert statuses(wf) == [("a", "CANCELED")]
    assert wf["endTime"] > 0


async def test_terminated_workflows_task_is_no_longer_pollable(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    workflow_id = await start(client)
    await client.delete(f"/api/workflow/{workflow_id}")
    assert await poll(client, "task_a") is None


async def test_terminate_of_a_completed_workflow_is_409(client: httpx.AsyncClient) -> None:
    workflow_id = await completed_workflow(client)
    response = await client.delete(f"/api/workflow/{workflow_id}")
    assert error(response, 409) == "Cannot terminate a COMPLETED workflow."
    assert (await get_wf(client, workflow_id))["status"] == "COMPLETED"


async def test_terminate_of_a_terminated_workflow_is_a_no_op(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await register(client, flow())
    workflow_id = await start(client)
    await client.delete(f"/api/workflow/{workflow_id}", params={"reason": "first"})
    before = await get_wf(client, workflow_id)
    clock.advance(1000)
    response = await client.delete(f"/api/workflow/{workflow_id}", params={"reason": "second"})
    assert response.status_code == 200, response.text
    after = await get_wf(client, workflow_id)
    assert (after["status"], after["reasonForIncompletion"]) == ("TERMINATED", "first")
    assert after["endTime"] == before["endTime"]


async def test_a_failed_workflow_can_be_terminated(client: httpx.AsyncClient) -> None:
    workflow_id = await failed_workflow(client)
    response = await client.delete(f"/api/workflow/{workflow_id}", params={"reason": "cleanup"})
    assert response.status_code == 200, response.text
    wf = await get_wf(client, workflow_id)
    assert (wf["status"], wf["reasonForIncompletion"]) == ("TERMINATED", "cleanup")


async def test_terminate_does_not_start_the_failure_workflow(client: httpx.AsyncClient) -> None:
    await register(client, flow("on_failure", ("f",)))
    await register(client, flow(failureWorkflow="on_failure"))
    workflow_id = await start(client)
    await client.delete(f"/api/workflow/{workflow_id}")
    wf = await get_wf(client, workflow_id)
    assert "conductor.failure_workflow" not in wf["output"]
    running = await client.get("/api/workflow/running/on_failure")
    assert running.json() == []


# -- pause and resume ---------------------------------------------------------------------


async def test_pause_of_an_ended_workflow_is_409(client: httpx.AsyncClient) -> None:
    workflow_id = await completed_workflow(client)
    response = await client.put(f"/api/workflow/{workflow_id}/pause")
    assert error(response, 409) == f"Workflow {workflow_id} has ended, status cannot be updated."


async def test_pause_of_a_paused_workflow_is_a_no_op(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    workflow_id = await start(client)
    assert (await client.put(f"/api/workflow/{workflow_id}/pause")).status_code == 200
    assert (await client.put(f"/api/workflow/{workflow_id}/pause")).status_code == 200
    assert (await get_wf(client, workflow_id))["status"] == "PAUSED"


async def test_paused_workflow_schedules_nothing_after_a_task_completes(
    client: httpx.AsyncClient,
) -> None:
    await register(client, flow())
    workflow_id = await start(client)
    assert (await client.put(f"/api/workflow/{workflow_id}/pause")).status_code == 200
    # A task queued before the pause can still be polled and completed.
    await work(client, "task_a", output={"v": 1})
    assert (await client.put(f"/api/workflow/decide/{workflow_id}")).status_code == 200
    wf = await get_wf(client, workflow_id)
    assert wf["status"] == "PAUSED"
    assert statuses(wf) == [("a", "COMPLETED")]
    assert await poll(client, "task_b") is None


async def test_resume_continues_a_paused_workflow(client: httpx.AsyncClient) -> None:
    definition = flow()
    definition["tasks"][1]["inputParameters"] = {"prev": "${a.output.v}"}
    await register(client, definition)
    workflow_id = await start(client)
    await client.put(f"/api/workflow/{workflow_id}/pause")
    await work(client, "task_a", output={"v": 7})
    assert (await client.put(f"/api/workflow/{workflow_id}/resume")).status_code == 200
    wf = await get_wf(client, workflow_id)
    assert wf["status"] == "RUNNING"
    assert statuses(wf) == [("a", "COMPLETED"), ("b", "SCHEDULED")]
    task_b = await work(client, "task_b")
    assert task_b["inputData"] == {"prev": 7}
    assert (await get_wf(client, workflow_id))["status"] == "COMPLETED"


async def test_resume_restarts_the_workflow_timeout_clock(
    client: httpx.AsyncClient, clock: ManualClock, api_app: FastAPI
) -> None:
    await register(client, flow(timeoutSeconds=10, timeoutPolicy="TIME_OUT_WF"))
    workflow_id = await start(client)
    await client.put(f"/api/workflow/{workflow_id}/pause")
    clock.advance(8_000)
    await client.put(f"/api/workflow/{workflow_id}/resume")
    clock.advance(5_000)  # 13 s after the start, 5 s after the resume
    # The timer sweep has nothing due (it would re-decide the workflow on every pass).
    assert await api_app.state.services.executor.sweep() == 0
    await client.put(f"/api/workflow/decide/{workflow_id}")
    assert (await get_wf(client, workflow_id))["status"] == "RUNNING"
    clock.advance(5_000)
    assert await api_app.state.services.executor.sweep() == 1
    assert (await get_wf(client, workflow_id))["status"] == "TIMED_OUT"


async def test_resume_of_a_running_workflow_is_409(client: httpx.AsyncClient) -> None:
    # Conductor answers 500 (IllegalStateException); Baton answers 409 with the same text.
    await register(client, flow())
    workflow_id = await start(client)
    response = await client.put(f"/api/workflow/{workflow_id}/resume")
    assert error(response, 409) == (
        f"The workflow {workflow_id} is not PAUSED so cannot resume. Current status is RUNNING"
    )


# -- retry --------------------------------------------------------------------------------


async def test_retry_reschedules_the_failed_task_as_a_new_task(client: httpx.AsyncClient) -> None:
    workflow_id = await failed_workflow(client)
    failed = (await get_wf(client, workflow_id))["tasks"][0]
    response = await client.post(f"/api/workflow/{workflow_id}/retry")
    assert response.status_code == 204, response.text
    wf = await get_wf(client, workflow_id)
    assert wf["status"] == "RUNNING"
    assert "reasonForIncompletion" not in wf
    assert statuses(wf) == [("a", "FAILED"), ("a", "SCHEDULED")]
    old, new = wf["tasks"]
    assert old["retried"] is True
    assert new["taskId"] != failed["taskId"]
    assert (new["retriedTaskId"], new["retryCount"]) == (failed["taskId"], 1)


async def test_retried_workflow_runs_to_completion(client: httpx.AsyncClient) -> None:
    workflow_id = await failed_workflow(client)
    await client.post(f"/api/workflow/{workflow_id}/retry")
    await work(client, "task_a")
    await work(client, "task_b")
    wf = await get_wf(client, workflow_id)
    assert wf["status"] == "COMPLETED"
    assert statuses(wf) == [("a", "FAILED"), ("a", "COMPLETED"), ("b", "COMPLETED")]


async def test_retry_without_retryable_tasks_is_409(client: httpx.AsyncClient) -> None:
    workflow_id = await completed_workflow(client)
    response = await client.post(f"/api/workflow/{workflow_id}/retry")
    assert error(response, 409) == (
        "There are no retryable tasks! Use restart if you want to attempt entire workflow "
        "execution again."
    )


async def test_retry_of_a_running_workflow_is_404(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    workflow_id = await start(client)
    response = await client.post(f"/api/workflow/{workflow_id}/retry")
    assert error(response, 404) == "Workflow is still running.  status=RUNNING"


# -- restart ------------------------------------------------------------------------------


async def test_restart_deletes_the_tasks_and_schedules_the_first_again(
    client: httpx.AsyncClient,
) -> None:
    workflow_id = await completed_workflow(client)
    old_ids = [t["taskId"] for t in (await get_wf(client, workflow_id))["tasks"]]
    response = await client.post(f"/api/workflow/{workflow_id}/restart")
    assert response.status_code == 204, response.text
    wf = await get_wf(client, workflow_id)
    assert wf["status"] == "RUNNING"
    assert wf["output"] == {}
    assert "endTime" not in wf
    assert statuses(wf) == [("a", "SCHEDULED")]
    assert wf["tasks"][0]["taskId"] not in old_ids
    for task_id in old_ids:
        assert (await client.get(f"/api/tasks/{task_id}")).status_code == 404
    assert await poll(client, "task_a") is not None


async def test_restart_of_a_running_workflow_is_409(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    workflow_id = await start(client)
    response = await client.post(f"/api/workflow/{workflow_id}/restart")
    error(response, 409)
    assert statuses(await get_wf(client, workflow_id)) == [("a", "SCHEDULED")]


async def test_restart_of_a_non_restartable_completed_workflow_is_404(
    client: httpx.AsyncClient,
) -> None:
    await register(client, flow(restartable=False))
    workflow_id = await start(client)
    await work(client, "task_a")
    await work(client, "task_b")
    response = await client.post(f"/api/workflow/{workflow_id}/restart")
    assert error(response, 404) == f"Workflow: {workflow_id} is non-restartable"


async def test_restart_keeps_the_version_it_ran_with(client: httpx.AsyncClient) -> None:
    workflow_id = await completed_workflow(client)
    await register(client, {**flow(refs=("c",)), "version": 2})
    await client.post(f"/api/workflow/{workflow_id}/restart")
    wf = await get_wf(client, workflow_id)
    assert wf["workflowVersion"] == 1
    assert statuses(wf) == [("a", "SCHEDULED")]


async def test_restart_with_latest_definitions_uses_the_newer_version(
    client: httpx.AsyncClient,
) -> None:
    workflow_id = await completed_workflow(client)
    await register(client, {**flow(refs=("c",)), "version": 2})
    response = await client.post(
        f"/api/workflow/{workflow_id}/restart", params={"useLatestDefinitions": "true"}
    )
    assert response.status_code == 204, response.text
    wf = await get_wf(client, workflow_id)
    assert (wf["workflowVersion"], wf["workflowDefinition"]["version"]) == (2, 2)
    assert statuses(wf) == [("c", "SCHEDULED")]


# -- rerun --------------------------------------------------------------------------------


async def test_rerun_from_the_start_uses_the_new_input(client: httpx.AsyncClient) -> None:
    workflow_id = await completed_workflow(client)
    response = await client.post(
        f"/api/workflow/{workflow_id}/rerun",
        json={"workflowInput": {"x": 99}, "correlationId": "again"},
    )
    assert response.status_code == 200, response.text
    assert response.text == workflow_id
    wf = await get_wf(client, workflow_id)
    assert (wf["status"], wf["input"], wf["correlationId"]) == ("RUNNING", {"x": 99}, "again")
    assert statuses(wf) == [("a", "SCHEDULED")]
    assert wf["tasks"][0]["inputData"] == {"x": 99}


async def test_rerun_from_the_start_clears_the_earlier_failure(client: httpx.AsyncClient) -> None:
    workflow_id = await failed_workflow(client)
    await client.post(f"/api/workflow/{workflow_id}/rerun", json={})
    wf = await get_wf(client, workflow_id)
    assert wf["status"] == "RUNNING"
    assert "reasonForIncompletion" not in wf
    assert (wf["failedReferenceTaskNames"], wf["failedTaskNames"]) == ([], [])


async def test_rerun_from_a_task_removes_later_tasks_and_reschedules_it(
    client: httpx.AsyncClient,
) -> None:
    workflow_id = await completed_workflow(client)
    task_a, task_b = (await get_wf(client, workflow_id))["tasks"]
    response = await client.post(
        f"/api/workflow/{workflow_id}/rerun",
        json={"reRunFromWorkflowId": workflow_id, "reRunFromTaskId": task_a["taskId"]},
    )
    assert (response.status_code, response.text) == (200, workflow_id)
    wf = await get_wf(client, workflow_id)
    assert wf["status"] == "RUNNING"
    assert statuses(wf) == [("a", "SCHEDULED")]
    assert wf["tasks"][0]["taskId"] == task_a["taskId"]
    assert wf["tasks"][0]["outputData"] == {}
    assert (await client.get(f"/api/tasks/{task_b['taskId']}")).status_code == 404
    await work(client, "task_a")
    await work(client, "task_b")
    assert (await get_wf(client, workflow_id))["status"] == "COMPLETED"


async def test_rerun_from_a_task_with_task_input_replaces_its_input(
    client: httpx.AsyncClient,
) -> None:
    workflow_id = await completed_workflow(client)
    task_b = (await get_wf(client, workflow_id))["tasks"][1]
    await client.post(
        f"/api/workflow/{workflow_id}/rerun",
        json={"reRunFromTaskId": task_b["taskId"], "taskInput": {"y": 2}},
    )
    polled = await poll(client, "task_b")
    assert polled is not None
    assert (polled["taskId"], polled["inputData"]) == (task_b["taskId"], {"y": 2})


async def test_rerun_from_an_unknown_task_is_400(client: httpx.AsyncClient) -> None:
    workflow_id = await completed_workflow(client)
    response = await client.post(
        f"/api/workflow/{workflow_id}/rerun", json={"reRunFromTaskId": "nope"}
    )
    assert error(response, 400) == "Task nope not found"
    assert (await get_wf(client, workflow_id))["status"] == "COMPLETED"


async def test_rerun_of_a_running_workflow_is_409(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    workflow_id = await start(client)
    error(await client.post(f"/api/workflow/{workflow_id}/rerun", json={}), 409)


# -- skip ---------------------------------------------------------------------------------


async def test_skipped_task_is_passed_over(client: httpx.AsyncClient) -> None:
    await register(client, flow(refs=("a", "b", "c")))
    workflow_id = await start(client)
    response = await client.put(f"/api/workflow/{workflow_id}/skiptask/b")
    assert response.status_code == 200, response.text
    wf = await get_wf(client, workflow_id)
    assert statuses(wf) == [("b", "SKIPPED"), ("a", "SCHEDULED")]
    await work(client, "task_a")
    assert statuses(await get_wf(client, workflow_id))[-1] == ("c", "SCHEDULED")
    assert await poll(client, "task_b") is None
    await work(client, "task_c")
    wf = await get_wf(client, workflow_id)
    assert wf["status"] == "COMPLETED"
    assert statuses(wf) == [("b", "SKIPPED"), ("a", "COMPLETED"), ("c", "COMPLETED")]


async def test_skip_of_an_already_scheduled_task_is_409(client: httpx.AsyncClient) -> None:
    # Conductor answers 500 (IllegalStateException); Baton answers 409.
    await register(client, flow())
    workflow_id = await start(client)
    error(await client.put(f"/api/workflow/{workflow_id}/skiptask/a"), 409)


async def test_skip_in_an_ended_workflow_is_409(client: httpx.AsyncClient) -> None:
    workflow_id = await failed_workflow(client)
    error(await client.put(f"/api/workflow/{workflow_id}/skiptask/b"), 409)


# -- reset callbacks ----------------------------------------------------------------------


async def test_reset_callbacks_makes_a_waiting_task_pollable_at_once(
    client: httpx.AsyncClient,
) -> None:
    await register(client, flow())
    workflow_id = await start(client)
    await work(client, "task_a", "IN_PROGRESS", callbackAfterSeconds=600)
    assert await poll(client, "task_a") is None
    response = await client.post(f"/api/workflow/{workflow_id}/resetcallbacks")
    assert response.status_code == 204, response.text
    again = await poll(client, "task_a")
    assert again is not None and again["pollCount"] == 2


async def test_reset_callbacks_of_an_ended_workflow_is_409(client: httpx.AsyncClient) -> None:
    workflow_id = await completed_workflow(client)
    error(await client.post(f"/api/workflow/{workflow_id}/resetcallbacks"), 409)


# -- remove -------------------------------------------------------------------------------


async def test_remove_deletes_the_workflow_and_its_tasks(client: httpx.AsyncClient) -> None:
    workflow_id = await completed_workflow(client)
    task_ids = [t["taskId"] for t in (await get_wf(client, workflow_id))["tasks"]]
    response = await client.delete(f"/api/workflow/{workflow_id}/remove")
    assert response.status_code == 200, response.text
    got = await client.get(f"/api/workflow/{workflow_id}")
    assert error(got, 404) == f"No such workflow found by id: {workflow_id}"
    for task_id in task_ids:
        assert (await client.get(f"/api/tasks/{task_id}")).status_code == 404


async def test_terminate_remove_deletes_a_running_workflow(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    workflow_id = await start(client)
    response = await client.delete(
        f"/api/workflow/{workflow_id}/terminate-remove", params={"reason": "gone"}
    )
    assert response.status_code == 200, response.text
    error(await client.get(f"/api/workflow/{workflow_id}"), 404)
    assert await poll(client, "task_a") is None
    sizes = await client.get("/api/tasks/queue/sizes", params={"taskType": "task_a"})
    assert sizes.json() == {"task_a": 0}


# -- unknown workflow ---------------------------------------------------------------------

UNKNOWN_ID_OPERATIONS = [
    ("GET", "/api/workflow/{id}"),
    ("GET", "/api/workflow/{id}/status"),
    ("GET", "/api/workflow/{id}/tasks"),
    ("PUT", "/api/workflow/decide/{id}"),
    ("PUT", "/api/workflow/{id}/pause"),
    ("PUT", "/api/workflow/{id}/resume"),
    ("PUT", "/api/workflow/{id}/skiptask/a"),
    ("POST", "/api/workflow/{id}/rerun"),
    ("POST", "/api/workflow/{id}/restart"),
    ("POST", "/api/workflow/{id}/retry"),
    ("POST", "/api/workflow/{id}/resetcallbacks"),
    ("DELETE", "/api/workflow/{id}"),
    ("DELETE", "/api/workflow/{id}/remove"),
    ("DELETE", "/api/workflow/{id}/terminate-remove"),
]


@pytest.mark.parametrize(("method", "path"), UNKNOWN_ID_OPERATIONS)
async def test_every_operation_on_an_unknown_workflow_is_404(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    body: Json | None = {} if path.endswith("/rerun") else None
    response = await client.request(method, path.format(id="w404"), json=body)
    assert error(response, 404) == "No such workflow found by id: w404"


# -- bulk ---------------------------------------------------------------------------------


async def test_bulk_terminate_reports_per_id_errors(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    first, second = await start(client), await start(client)
    response = await client.post(
        "/api/workflow/bulk/terminate", json=[first, "ghost", second], params={"reason": "bulk"}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "bulkErrorResults": {"ghost": "No such workflow found by id: ghost"},
        "bulkSuccessfulResults": [first, second],
        "message": "Bulk Request has been processed.",
    }
    for workflow_id in (first, second):
        wf = await get_wf(client, workflow_id)
        assert (wf["status"], wf["reasonForIncompletion"]) == ("TERMINATED", "bulk")


async def test_bulk_pause_then_resume(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    ids = [await start(client), await start(client)]
    paused = await client.put("/api/workflow/bulk/pause", json=ids)
    assert paused.json()["bulkSuccessfulResults"] == ids
    assert {(await get_wf(client, i))["status"] for i in ids} == {"PAUSED"}
    resumed = await client.put("/api/workflow/bulk/resume", json=ids)
    assert (resumed.json()["bulkSuccessfulResults"], resumed.json()["bulkErrorResults"]) == (
        ids,
        {},
    )
    assert {(await get_wf(client, i))["status"] for i in ids} == {"RUNNING"}


async def test_bulk_retry_and_restart_report_running_workflows_as_errors(
    client: httpx.AsyncClient,
) -> None:
    failed = await failed_workflow(client)
    running = await start(client)
    retried = (await client.post("/api/workflow/bulk/retry", json=[failed, running])).json()
    assert retried["bulkSuccessfulResults"] == [failed]
    assert retried["bulkErrorResults"] == {running: "Workflow is still running.  status=RUNNING"}
    restarted = (await client.post("/api/workflow/bulk/restart", json=[running])).json()
    assert restarted["bulkSuccessfulResults"] == []
    assert list(restarted["bulkErrorResults"]) == [running]


async def test_bulk_remove_deletes_each_workflow(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    ids = [await start(client), await start(client)]
    response = await client.request("DELETE", "/api/workflow/bulk/terminate-remove", json=ids)
    assert response.json()["bulkSuccessfulResults"] == ids
    response = await client.request("DELETE", "/api/workflow/bulk/remove", json=ids)
    assert response.json()["bulkErrorResults"] == {
        i: f"No such workflow found by id: {i}" for i in ids
    }


BULK_ENDPOINTS = [
    ("PUT", "/api/workflow/bulk/pause"),
    ("PUT", "/api/workflow/bulk/resume"),
    ("POST", "/api/workflow/bulk/restart"),
    ("POST", "/api/workflow/bulk/retry"),
    ("POST", "/api/workflow/bulk/terminate"),
    ("DELETE", "/api/workflow/bulk/remove"),
    ("DELETE", "/api/workflow/bulk/terminate-remove"),
    ("POST", "/api/workflow/bulk/search"),
]


@pytest.mark.parametrize(("method", "path"), BULK_ENDPOINTS)
async def test_bulk_of_more_than_1000_ids_is_400(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    ids = [f"w{i}" for i in range(1001)]
    response = await client.request(method, path, json=ids)
    assert error(response, 400) == (
        "Cannot process more than 1000 workflows. Please use multiple requests."
    )


async def test_bulk_search_returns_the_workflows_and_the_errors(
    client: httpx.AsyncClient,
) -> None:
    await register(client, flow())
    workflow_id = await start(client)
    response = await client.post(
        "/api/workflow/bulk/search", json=[workflow_id, "ghost"], params={"includeTasks": "false"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["bulkErrorResults"] == {"ghost": "No such workflow found by id: ghost"}
    [found] = body["bulkSuccessfulResults"]
    assert (found["workflowId"], found["tasks"]) == (workflow_id, [])


# -- reads --------------------------------------------------------------------------------


async def test_status_has_only_the_id_status_and_correlation_id_by_default(
    client: httpx.AsyncClient,
) -> None:
    await register(client, flow())
    response = await client.post(
        "/api/workflow", json={"name": "flow", "input": {"x": 1}, "correlationId": "c1"}
    )
    workflow_id = response.text
    status = await client.get(f"/api/workflow/{workflow_id}/status")
    assert status.json() == {"workflowId": workflow_id, "status": "RUNNING", "correlationId": "c1"}


async def test_status_includes_output_and_variables_when_asked(client: httpx.AsyncClient) -> None:
    await register(client, flow(refs=("a",), variables={"v": 1}))
    workflow_id = await start(client)
    await work(client, "task_a", output={"o": 2})
    response = await client.get(
        f"/api/workflow/{workflow_id}/status",
        params={"includeOutput": "true", "includeVariables": "true"},
    )
    assert response.json() == {
        "workflowId": workflow_id,
        "status": "COMPLETED",
        "output": {"o": 2},
        "variables": {"v": 1},
    }


async def test_get_without_tasks_has_an_empty_task_list(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    workflow_id = await start(client)
    assert (await get_wf(client, workflow_id, includeTasks="false"))["tasks"] == []


async def test_tasks_page_is_paginated_with_the_total(client: httpx.AsyncClient) -> None:
    await register(client, flow(refs=("a", "b", "c")))
    workflow_id = await start(client)
    await work(client, "task_a")
    await work(client, "task_b")
    response = await client.get(
        f"/api/workflow/{workflow_id}/tasks", params={"start": 1, "count": 1}
    )
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["totalHits"] == 3
    assert [t["referenceTaskName"] for t in page["results"]] == ["b"]


async def test_tasks_page_filters_by_status_case_insensitively(
    client: httpx.AsyncClient,
) -> None:
    await register(client, flow(refs=("a", "b", "c")))
    workflow_id = await start(client)
    await work(client, "task_a")
    await work(client, "task_b")
    response = await client.get(
        f"/api/workflow/{workflow_id}/tasks", params={"status": ["completed"]}
    )
    page = response.json()
    assert page["totalHits"] == 2
    assert [t["referenceTaskName"] for t in page["results"]] == ["a", "b"]
    scheduled = await client.get(
        f"/api/workflow/{workflow_id}/tasks", params={"status": ["SCHEDULED", "FAILED"]}
    )
    assert [t["referenceTaskName"] for t in scheduled.json()["results"]] == ["c"]


async def _correlated_pair(client: httpx.AsyncClient) -> tuple[str, str]:
    """Two runs of `flow` with correlation id `c1`: one RUNNING, one TERMINATED."""
    await register(client, flow())
    body = {"name": "flow", "input": {"x": 1}, "correlationId": "c1"}
    ended = (await client.post("/api/workflow", json=body)).text
    await client.delete(f"/api/workflow/{ended}")
    running = (await client.post("/api/workflow", json=body)).text
    await client.post("/api/workflow", json={**body, "correlationId": "other"})
    return running, ended


async def test_correlated_lists_only_running_workflows_by_default(
    client: httpx.AsyncClient,
) -> None:
    running, _ended = await _correlated_pair(client)
    response = await client.get("/api/workflow/flow/correlated/c1")
    assert response.status_code == 200, response.text
    assert [w["workflowId"] for w in response.json()] == [running]
    assert response.json()[0]["tasks"] == []


async def test_correlated_includes_closed_workflows_when_asked(client: httpx.AsyncClient) -> None:
    running, ended = await _correlated_pair(client)
    response = await client.get(
        "/api/workflow/flow/correlated/c1",
        params={"includeClosed": "true", "includeTasks": "true"},
    )
    found = {w["workflowId"]: w for w in response.json()}
    assert set(found) == {running, ended}
    assert statuses(found[running]) == [("a", "SCHEDULED")]


async def test_correlated_leaves_out_a_paused_workflow_unless_closed_are_included(
    client: httpx.AsyncClient,
) -> None:
    running, _ended = await _correlated_pair(client)
    await client.put(f"/api/workflow/{running}/pause")
    assert (await client.get("/api/workflow/flow/correlated/c1")).json() == []
    closed = await client.get("/api/workflow/flow/correlated/c1", params={"includeClosed": "true"})
    assert running in [w["workflowId"] for w in closed.json()]


async def test_correlated_post_maps_each_correlation_id(client: httpx.AsyncClient) -> None:
    running, ended = await _correlated_pair(client)
    response = await client.post(
        "/api/workflow/flow/correlated",
        json=["c1", "none"],
        params={"includeClosed": "true"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"c1", "none"}
    assert {w["workflowId"] for w in body["c1"]} == {running, ended}
    assert body["none"] == []


async def test_running_ids_are_by_name_and_version(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    await register(client, {**flow(), "version": 2})
    v1 = (await client.post("/api/workflow/flow", json={}, params={"version": 1})).text
    v2 = (await client.post("/api/workflow/flow", json={}, params={"version": 2})).text
    ended = (await client.post("/api/workflow/flow", json={}, params={"version": 1})).text
    await client.delete(f"/api/workflow/{ended}")
    assert (await client.get("/api/workflow/running/flow")).json() == [v1]
    by_version = await client.get("/api/workflow/running/flow", params={"version": 2})
    assert by_version.json() == [v2]


async def test_running_ids_within_a_time_window(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await register(client, flow())
    await start(client)
    clock.advance(60_000)
    later = await start(client)
    now = clock.now_ms()
    response = await client.get(
        "/api/workflow/running/flow", params={"startTime": now - 1000, "endTime": now + 1000}
    )
    assert response.json() == [later]


# -- starting with a StartWorkflowRequest -------------------------------------------------


async def test_start_request_carries_input_correlation_priority_and_domains(
    client: httpx.AsyncClient,
) -> None:
    await register(client, flow())
    response = await client.post(
        "/api/workflow",
        json={
            "name": "flow",
            "version": 1,
            "input": {"x": 5},
            "correlationId": "corr",
            "priority": 50,
            "taskToDomain": {"task_a": "blue"},
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    wf = await get_wf(client, response.text)
    assert (wf["input"], wf["correlationId"], wf["priority"]) == ({"x": 5}, "corr", 50)
    assert wf["taskToDomain"] == {"task_a": "blue"}
    [task] = wf["tasks"]
    assert (task["domain"], task["workflowPriority"], task["inputData"]) == ("blue", 50, {"x": 5})


async def test_start_request_with_an_inline_definition_needs_no_registration(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/workflow",
        json={"name": "inline", "input": {"x": 3}, "workflowDef": flow("inline", ("a",))},
    )
    assert response.status_code == 200, response.text
    wf = await get_wf(client, response.text)
    assert (wf["workflowName"], wf["workflowDefinition"]["name"]) == ("inline", "inline")
    assert statuses(wf) == [("a", "SCHEDULED")]
    assert (await client.get("/api/metadata/workflow/inline")).status_code == 404


async def test_start_request_with_priority_100_is_400(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    response = await client.post("/api/workflow", json={"name": "flow", "priority": 100})
    error(response, 400)
    assert (await client.get("/api/workflow/running/flow")).json() == []


async def test_start_request_without_a_name_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/workflow", json={"input": {}})
    error(response, 400)


async def test_start_request_with_null_input_is_400(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    response = await client.post("/api/workflow", json={"name": "flow", "input": None})
    assert error(response, 400) == "NULL input passed when starting workflow"


async def test_start_request_of_an_unknown_workflow_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/workflow", json={"name": "ghost", "version": 3})
    assert error(response, 404) == "No such workflow defined. name=ghost, version=3"


# -- idempotency --------------------------------------------------------------------------


def _keyed(strategy: str) -> Json:
    return {
        "name": "flow",
        "input": {"x": 1},
        "idempotencyKey": "order-1",
        "idempotencyStrategy": strategy,
    }


async def test_idempotency_return_existing_gives_back_the_same_id(
    client: httpx.AsyncClient,
) -> None:
    await register(client, flow())
    first = await client.post("/api/workflow", json=_keyed("RETURN_EXISTING"))
    second = await client.post("/api/workflow", json=_keyed("RETURN_EXISTING"))
    assert (second.status_code, second.text) == (200, first.text)
    assert (await client.get("/api/workflow/running/flow")).json() == [first.text]


async def test_idempotency_fail_is_409_for_a_second_start(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    first = await client.post("/api/workflow", json=_keyed("FAIL"))
    await client.delete(f"/api/workflow/{first.text}")
    error(await client.post("/api/workflow", json=_keyed("FAIL")), 409)


async def test_idempotency_fail_on_running_is_409_while_running(
    client: httpx.AsyncClient,
) -> None:
    await register(client, flow())
    first = await client.post("/api/workflow", json=_keyed("FAIL_ON_RUNNING"))
    error(await client.post("/api/workflow", json=_keyed("FAIL_ON_RUNNING")), 409)
    assert (await client.get("/api/workflow/running/flow")).json() == [first.text]


async def test_idempotency_fail_on_running_allows_a_new_run_after_the_first_ended(
    client: httpx.AsyncClient,
) -> None:
    await register(client, flow())
    first = await client.post("/api/workflow", json=_keyed("FAIL_ON_RUNNING"))
    await client.delete(f"/api/workflow/{first.text}")
    second = await client.post("/api/workflow", json=_keyed("FAIL_ON_RUNNING"))
    assert second.status_code == 200, second.text
    assert second.text != first.text
    assert (await get_wf(client, second.text))["status"] == "RUNNING"


# -- execute (start and wait) -------------------------------------------------------------


async def test_execute_returns_when_the_workflow_completes(client: httpx.AsyncClient) -> None:
    await register(client, flow(refs=("a",)))

    async def worker() -> None:
        response = await client.get(
            "/api/tasks/poll/batch/task_a", params={"workerid": "w1", "timeout": 5000}
        )
        [task] = response.json()
        await update(client, task, output={"done": True})

    began = time.monotonic()
    worker_run = asyncio.create_task(worker())
    response = await asyncio.wait_for(
        client.post(
            "/api/workflow/execute/flow/1",
            json={"input": {"x": 1}, "correlationId": "sync"},
            params={"requestId": "r1", "waitForSeconds": 10},
        ),
        timeout=15,
    )
    await asyncio.wait_for(worker_run, timeout=5)
    assert time.monotonic() - began < 5
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["targetWorkflowStatus"] == "COMPLETED"
    assert (body["output"], body["correlationId"], body["requestId"]) == (
        {"done": True},
        "sync",
        "r1",
    )
    assert (await get_wf(client, body["workflowId"]))["status"] == "COMPLETED"


async def test_execute_returns_running_after_its_wait_bound(client: httpx.AsyncClient) -> None:
    await register(client, flow(refs=("a",)))
    began = time.monotonic()
    response = await asyncio.wait_for(
        client.post(
            "/api/workflow/execute/flow/1", json={"input": {}}, params={"waitForSeconds": 1}
        ),
        timeout=10,
    )
    elapsed = time.monotonic() - began
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["targetWorkflowStatus"], body["workflowId"]) == ("RUNNING", body["workflowId"])
    assert 0.9 <= elapsed < 5


# -- failure workflow, input template, workflow timeout ----------------------------------


async def test_failing_workflow_starts_its_failure_workflow(client: httpx.AsyncClient) -> None:
    await task_defs(client, {"name": "task_a", "retryCount": 0})
    await register(client, flow("on_failure", ("f",)))
    await register(client, flow(failureWorkflow="on_failure"))
    response = await client.post(
        "/api/workflow", json={"name": "flow", "input": {"x": 1}, "correlationId": "c9"}
    )
    workflow_id = response.text
    await work(client, "task_a", "FAILED", reasonForIncompletion="boom")
    wf = await get_wf(client, workflow_id)
    assert wf["status"] == "FAILED"
    failure_id = wf["output"]["conductor.failure_workflow"]
    failure = await get_wf(client, failure_id)
    assert (failure["workflowName"], failure["status"], failure["correlationId"]) == (
        "on_failure",
        "RUNNING",
        "c9",
    )
    assert failure["input"]["workflowId"] == workflow_id
    assert failure["input"]["reason"] == wf["reasonForIncompletion"]
    assert failure["input"]["failureStatus"] == "FAILED"
    assert failure["input"]["x"] == 1


async def test_failure_workflow_named_by_an_input_key_is_started(
    client: httpx.AsyncClient,
) -> None:
    await task_defs(client, {"name": "task_a", "retryCount": 0})
    await register(client, flow("on_failure", ("f",)))
    await register(client, flow(failureWorkflow="$workflow.input.fw"))
    workflow_id = await start(client, x=1, fw="on_failure")
    await work(client, "task_a", "FAILED")
    failure_id = (await get_wf(client, workflow_id))["output"]["conductor.failure_workflow"]
    assert (await get_wf(client, failure_id))["workflowName"] == "on_failure"


async def test_timed_out_workflow_starts_its_failure_workflow(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await register(client, flow("on_failure", ("f",)))
    await register(
        client, flow(failureWorkflow="on_failure", timeoutSeconds=5, timeoutPolicy="TIME_OUT_WF")
    )
    workflow_id = await start(client)
    clock.advance(5_000)
    await client.put(f"/api/workflow/decide/{workflow_id}")
    wf = await get_wf(client, workflow_id)
    assert wf["status"] == "TIMED_OUT"
    failure = await get_wf(client, wf["output"]["conductor.failure_workflow"])
    assert (failure["input"]["workflowId"], failure["input"]["failureStatus"]) == (
        workflow_id,
        "TIMED_OUT",
    )


async def test_input_template_fills_keys_missing_from_the_input(
    client: httpx.AsyncClient,
) -> None:
    await register(client, flow(inputTemplate={"x": 0, "region": "eu"}))
    wf = await get_wf(client, await start(client, x=5))
    assert wf["input"] == {"x": 5, "region": "eu"}
    assert wf["tasks"][0]["inputData"] == {"x": 5}


async def test_input_template_is_not_applied_to_an_empty_input(
    client: httpx.AsyncClient,
) -> None:
    await register(client, flow(inputTemplate={"region": "eu"}))
    response = await client.post("/api/workflow/flow", json={})
    assert (await get_wf(client, response.text))["input"] == {}


async def test_workflow_timeout_times_the_workflow_out(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await register(client, flow(timeoutSeconds=5, timeoutPolicy="TIME_OUT_WF"))
    workflow_id = await start(client)
    assert await poll(client, "task_a") is not None
    clock.advance(5_000)
    assert (await client.put(f"/api/workflow/decide/{workflow_id}")).status_code == 200
    wf = await get_wf(client, workflow_id)
    assert wf["status"] == "TIMED_OUT"
    assert wf["reasonForIncompletion"].startswith("Workflow timed out")
    assert statuses(wf) == [("a", "CANCELED")]


async def test_workflow_is_not_timed_out_before_its_timeout(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await register(client, flow(timeoutSeconds=5, timeoutPolicy="TIME_OUT_WF"))
    workflow_id = await start(client)
    clock.advance(4_999)
    await client.put(f"/api/workflow/decide/{workflow_id}")
    assert (await get_wf(client, workflow_id))["status"] == "RUNNING"
