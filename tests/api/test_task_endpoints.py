"""Task endpoints under /api/tasks: update by reference, update-v2, logs, task lookup, queue
sizes, poll data, requeue, ack, long polls, domains, concurrency and rate limits, lease
extension, and bad request bodies."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from app.clock import ManualClock
from tests.api.flows import flow, register, task_defs

Json = dict[str, Any]


# -- helpers ------------------------------------------------------------------------------


async def start(client: httpx.AsyncClient, name: str = "flow", **body: Any) -> str:
    payload = {"name": name, "input": {"x": 1}, **body}
    response = await client.post("/api/workflow", json=payload)
    assert response.status_code == 200, response.text
    return response.text


async def poll(client: httpx.AsyncClient, task_type: str, **params: Any) -> Json | None:
    response = await client.get(f"/api/tasks/poll/{task_type}", params={"workerid": "w1", **params})
    if response.status_code == 204:
        return None
    assert response.status_code == 200, response.text
    task: Json = response.json()
    return task


async def polled(client: httpx.AsyncClient, task_type: str, **params: Any) -> Json:
    task = await poll(client, task_type, **params)
    assert task is not None, f"nothing to poll for {task_type}"
    return task


def result(task: Json, status: str | None = "COMPLETED", **extra: Any) -> Json:
    body: Json = {"workflowInstanceId": task["workflowInstanceId"], "taskId": task["taskId"]}
    if status is not None:
        body["status"] = status
    return {**body, **extra}


async def get_wf(client: httpx.AsyncClient, workflow_id: str) -> Json:
    response = await client.get(f"/api/workflow/{workflow_id}")
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


async def get_task(client: httpx.AsyncClient, task_id: str) -> Json:
    response = await client.get(f"/api/tasks/{task_id}")
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


async def decide(client: httpx.AsyncClient, workflow_id: str) -> None:
    assert (await client.put(f"/api/workflow/decide/{workflow_id}")).status_code == 200


# -- update by reference name -------------------------------------------------------------


async def test_update_by_ref_completes_the_task_with_the_body_as_output(
    client: httpx.AsyncClient,
) -> None:
    await register(client, flow())
    workflow_id = await start(client)
    task_id = (await get_wf(client, workflow_id))["tasks"][0]["taskId"]
    response = await client.post(
        f"/api/tasks/{workflow_id}/a/COMPLETED", json={"answer": 42}, params={"workerid": "w9"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == task_id
    task = await get_task(client, task_id)
    assert (task["status"], task["outputData"], task["workerId"]) == (
        "COMPLETED",
        {"answer": 42},
        "w9",
    )
    wf = await get_wf(client, workflow_id)
    assert [t["referenceTaskName"] for t in wf["tasks"]] == ["a", "b"]


async def test_update_by_ref_of_an_unknown_ref_is_empty_text(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    workflow_id = await start(client)
    response = await client.post(f"/api/tasks/{workflow_id}/zzz/COMPLETED", json={})
    assert (response.status_code, response.text) == (200, "")


async def test_update_by_ref_of_a_done_task_is_empty_text(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    workflow_id = await start(client)
    await client.post(f"/api/tasks/{workflow_id}/a/COMPLETED", json={})
    response = await client.post(f"/api/tasks/{workflow_id}/a/FAILED", json={})
    assert (response.status_code, response.text) == (200, "")
    assert (await get_wf(client, workflow_id))["tasks"][0]["status"] == "COMPLETED"


async def test_update_by_ref_with_an_invalid_status_is_400(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    workflow_id = await start(client)
    response = await client.post(f"/api/tasks/{workflow_id}/a/DONE", json={})
    assert response.status_code == 400, response.text


# -- update-v2 ----------------------------------------------------------------------------


async def test_update_v2_returns_the_next_task_of_the_same_type(
    client: httpx.AsyncClient,
) -> None:
    await register(client, flow())
    first_wf, second_wf = await start(client), await start(client)
    task = await polled(client, "task_a")
    assert task["workflowInstanceId"] == first_wf
    response = await client.post("/api/tasks/update-v2", json=result(task, workerId="w2"))
    assert response.status_code == 200, response.text
    nxt = response.json()
    assert (nxt["workflowInstanceId"], nxt["taskType"], nxt["status"]) == (
        second_wf,
        "task_a",
        "IN_PROGRESS",
    )
    assert nxt["workerId"] == "w2"
    assert (await get_task(client, task["taskId"]))["status"] == "COMPLETED"


async def test_update_v2_is_204_when_no_task_is_waiting(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    await start(client)
    task = await polled(client, "task_a")
    response = await client.post("/api/tasks/update-v2", json=result(task))
    assert (response.status_code, response.content) == (204, b"")
    assert (await get_task(client, task["taskId"]))["status"] == "COMPLETED"


async def test_update_v2_of_an_in_progress_update_is_204_and_keeps_the_task_queued(
    client: httpx.AsyncClient,
) -> None:
    await register(client, flow())
    await start(client)
    task = await polled(client, "task_a")
    response = await client.post(
        "/api/tasks/update-v2", json=result(task, "IN_PROGRESS", outputData={"step": 1})
    )
    assert (response.status_code, response.content) == (204, b"")
    stored = await get_task(client, task["taskId"])
    assert (stored["status"], stored["pollCount"]) == ("SCHEDULED", 1)
    again = await polled(client, "task_a")
    assert (again["taskId"], again["pollCount"]) == (task["taskId"], 2)


# -- task logs ----------------------------------------------------------------------------


async def test_task_log_posted_as_a_raw_string_is_listed(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await register(client, flow())
    await start(client)
    task = await polled(client, "task_a")
    for line in ("first line", "second line"):
        response = await client.post(
            f"/api/tasks/{task['taskId']}/log",
            content=line.encode(),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 200, response.text
    response = await client.get(f"/api/tasks/{task['taskId']}/log")
    assert response.status_code == 200, response.text
    assert response.json() == [
        {"log": "first line", "taskId": task["taskId"], "createdTime": clock.now_ms()},
        {"log": "second line", "taskId": task["taskId"], "createdTime": clock.now_ms()},
    ]


async def test_task_log_posted_as_a_json_string_is_unquoted(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    await start(client)
    task = await polled(client, "task_a")
    await client.post(f"/api/tasks/{task['taskId']}/log", json="quoted line")
    logs = (await client.get(f"/api/tasks/{task['taskId']}/log")).json()
    assert [entry["log"] for entry in logs] == ["quoted line"]


async def test_task_result_logs_are_listed(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    await start(client)
    task = await polled(client, "task_a")
    logs = [{"log": "from the worker", "createdTime": 123}, {"log": "done"}]
    response = await client.post("/api/tasks", json=result(task, logs=logs))
    assert response.status_code == 200, response.text
    listed = (await client.get(f"/api/tasks/{task['taskId']}/log")).json()
    assert [(e["log"], e["taskId"]) for e in listed] == [
        ("from the worker", task["taskId"]),
        ("done", task["taskId"]),
    ]
    assert listed[0]["createdTime"] == 123


async def test_task_without_logs_is_204(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    await start(client)
    task = await polled(client, "task_a")
    response = await client.get(f"/api/tasks/{task['taskId']}/log")
    assert (response.status_code, response.content) == (204, b"")


# -- get task -----------------------------------------------------------------------------


async def test_get_task_returns_the_task(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    workflow_id = await start(client)
    scheduled = (await get_wf(client, workflow_id))["tasks"][0]
    task = await get_task(client, scheduled["taskId"])
    assert (task["taskId"], task["workflowInstanceId"], task["referenceTaskName"]) == (
        scheduled["taskId"],
        workflow_id,
        "a",
    )
    assert task["status"] == "SCHEDULED"


async def test_get_unknown_task_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/tasks/test999")
    assert response.status_code == 404
    assert response.json()["message"] == "Task not found for taskId: test999"


# -- queues and poll data -----------------------------------------------------------------


async def test_queue_sizes_by_task_type(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    await start(client)
    await start(client)
    response = await client.get("/api/tasks/queue/sizes", params={"taskType": ["task_a", "task_b"]})
    assert response.status_code == 200, response.text
    assert response.json() == {"task_a": 2, "task_b": 0}


async def test_queue_size_of_one_type_and_domain(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    await start(client)
    await start(client, taskToDomain={"task_a": "blue"})
    plain = await client.get("/api/tasks/queue/size", params={"taskType": "task_a"})
    blue = await client.get(
        "/api/tasks/queue/size", params={"taskType": "task_a", "domain": "blue"}
    )
    assert (plain.json(), blue.json()) == (1, 1)


async def test_queue_size_goes_down_when_a_task_is_polled(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    await start(client)
    await polled(client, "task_a")
    response = await client.get("/api/tasks/queue/size", params={"taskType": "task_a"})
    assert response.json() == 0


async def test_queue_all_lists_every_queue_by_name(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    await register(client, flow("other", ("c",)))
    await start(client)
    await start(client, "other")
    await start(client, taskToDomain={"task_a": "blue"})
    response = await client.get("/api/tasks/queue/all")
    assert response.status_code == 200, response.text
    assert response.json() == {"blue:task_a": 1, "task_a": 1, "task_c": 1}
    assert list(response.json()) == sorted(response.json())


async def test_poll_data_records_the_worker_and_time(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await client.get("/api/tasks/poll/task_a", params={"workerid": "w7"})
    response = await client.get("/api/tasks/queue/polldata", params={"taskType": "task_a"})
    assert response.status_code == 200, response.text
    assert response.json() == [
        {"queueName": "task_a", "workerId": "w7", "lastPollTime": clock.now_ms()}
    ]


async def test_poll_data_is_written_at_most_once_a_second_per_queue_and_worker(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    first = clock.now_ms()
    await client.get("/api/tasks/poll/task_a", params={"workerid": "w7"})
    clock.advance(999)
    await client.get("/api/tasks/poll/task_a", params={"workerid": "w7"})
    response = await client.get("/api/tasks/queue/polldata", params={"taskType": "task_a"})
    assert [d["lastPollTime"] for d in response.json()] == [first]
    clock.advance(1)
    await client.get("/api/tasks/poll/task_a", params={"workerid": "w7"})
    response = await client.get("/api/tasks/queue/polldata", params={"taskType": "task_a"})
    assert [d["lastPollTime"] for d in response.json()] == [clock.now_ms()]


async def test_a_poll_by_another_worker_is_written_at_once(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await client.get("/api/tasks/poll/task_a", params={"workerid": "w7"})
    clock.advance(10)
    await client.get("/api/tasks/poll/task_a", params={"workerid": "w8"})
    response = await client.get("/api/tasks/queue/polldata", params={"taskType": "task_a"})
    assert response.json() == [
        {"queueName": "task_a", "workerId": "w8", "lastPollTime": clock.now_ms()}
    ]


async def test_poll_data_all_lists_every_task_type(client: httpx.AsyncClient) -> None:
    await client.get("/api/tasks/poll/task_a", params={"workerid": "w1"})
    await client.get("/api/tasks/poll/task_b", params={"workerid": "w2", "domain": "blue"})
    response = await client.get("/api/tasks/queue/polldata/all")
    assert response.status_code == 200, response.text
    by_queue = {(p["queueName"], p.get("domain")): p["workerId"] for p in response.json()}
    assert by_queue == {("task_a", None): "w1", ("task_b", "blue"): "w2"}


async def test_requeue_returns_the_count_and_keeps_the_tasks_pollable(
    client: httpx.AsyncClient,
) -> None:
    await register(client, flow())
    await start(client)
    await start(client)
    response = await client.post("/api/tasks/queue/requeue/task_a")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "2"
    size = await client.get("/api/tasks/queue/size", params={"taskType": "task_a"})
    assert size.json() == 2
    await polled(client, "task_a")
    await polled(client, "task_a")
    assert await poll(client, "task_a") is None


async def test_requeue_keeps_a_waiting_task_waiting(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await register(client, flow())
    await start(client)
    task = await polled(client, "task_a")
    response = await client.post(
        "/api/tasks", json=result(task, "IN_PROGRESS", callbackAfterSeconds=60)
    )
    assert response.status_code == 200, response.text
    clock.advance(50_000)
    assert (await client.post("/api/tasks/queue/requeue/task_a")).text == "1"
    assert await poll(client, "task_a") is None
    clock.advance(10_000)
    assert await poll(client, "task_a") is not None


async def test_ack_is_true(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    await start(client)
    task = await polled(client, "task_a")
    response = await client.post(f"/api/tasks/{task['taskId']}/ack", params={"workerid": "w1"})
    assert (response.status_code, response.json()) == (200, True)


# -- long poll ----------------------------------------------------------------------------


async def _wait_for_poll_record(client: httpx.AsyncClient, task_type: str) -> None:
    """Until a poller of `task_type` has polled once (bounded)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        response = await client.get("/api/tasks/queue/polldata", params={"taskType": task_type})
        if response.json():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no poll of {task_type} within 5 s")


async def test_long_poll_hands_out_a_task_as_soon_as_it_is_scheduled(
    client: httpx.AsyncClient,
) -> None:
    await register(client, flow())
    waiting = asyncio.create_task(
        client.get(
            "/api/tasks/poll/batch/task_a",
            params={"workerid": "w1", "timeout": 2000, "count": 1},
        )
    )
    await _wait_for_poll_record(client, "task_a")
    await asyncio.sleep(0.05)  # let the poller reach its wait
    began = time.monotonic()
    workflow_id = await start(client)
    response = await asyncio.wait_for(waiting, timeout=5)
    elapsed = time.monotonic() - began
    assert response.status_code == 200, response.text
    [task] = response.json()
    assert (task["workflowInstanceId"], task["status"]) == (workflow_id, "IN_PROGRESS")
    assert elapsed < 0.5, f"long poll answered after {elapsed:.2f}s"


async def test_long_poll_with_nothing_to_do_ends_at_its_timeout(
    client: httpx.AsyncClient,
) -> None:
    began = time.monotonic()
    response = await asyncio.wait_for(
        client.get("/api/tasks/poll/batch/task_a", params={"timeout": 300}), timeout=5
    )
    elapsed = time.monotonic() - began
    assert (response.status_code, response.json()) == (200, [])
    assert 0.25 <= elapsed < 2


async def test_batch_poll_hands_out_up_to_count_tasks(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    ids = {await start(client) for _ in range(3)}
    response = await client.get(
        "/api/tasks/poll/batch/task_a", params={"count": 2, "timeout": 0, "workerid": "w1"}
    )
    tasks = response.json()
    assert len(tasks) == 2
    assert {t["workflowInstanceId"] for t in tasks} < ids


# -- domains, concurrency, rate limits ----------------------------------------------------


async def test_task_in_a_domain_goes_only_to_pollers_of_that_domain(
    client: httpx.AsyncClient,
) -> None:
    await register(client, flow())
    workflow_id = await start(client, taskToDomain={"task_a": "blue"})
    assert await poll(client, "task_a") is None
    assert await poll(client, "task_a", domain="green") is None
    task = await polled(client, "task_a", domain="blue")
    assert (task["workflowInstanceId"], task["domain"]) == (workflow_id, "blue")


async def test_task_goes_to_the_first_listed_domain_with_a_live_worker(
    client: httpx.AsyncClient,
) -> None:
    await register(client, flow())
    await client.get("/api/tasks/poll/task_a", params={"workerid": "w1", "domain": "green"})
    await start(client, taskToDomain={"task_a": "green,blue"})
    task = await polled(client, "task_a", domain="green")
    assert task["domain"] == "green"


async def test_task_goes_to_the_last_listed_domain_without_live_workers(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await register(client, flow())
    await client.get("/api/tasks/poll/task_a", params={"workerid": "w1", "domain": "green"})
    clock.advance(60_000)  # the green worker is no longer live
    await start(client, taskToDomain={"*": "green,blue"})
    assert await poll(client, "task_a", domain="green") is None
    task = await polled(client, "task_a", domain="blue")
    assert task["domain"] == "blue"


async def test_no_domain_entry_puts_the_task_on_the_plain_queue(
    client: httpx.AsyncClient,
) -> None:
    await register(client, flow())
    await start(client, taskToDomain={"task_a": "blue,NO_DOMAIN"})
    task = await polled(client, "task_a")
    assert "domain" not in task


async def test_concurrent_exec_limit_holds_back_a_second_task(client: httpx.AsyncClient) -> None:
    await task_defs(client, {"name": "task_a", "concurrentExecLimit": 1})
    await register(client, flow())
    await start(client)
    await start(client)
    first = await polled(client, "task_a")
    assert await poll(client, "task_a") is None
    await client.post("/api/tasks", json=result(first))
    second = await polled(client, "task_a")
    assert second["taskId"] != first["taskId"]


async def test_rate_limit_holds_back_a_second_task_until_the_window_passes(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await task_defs(
        client,
        {"name": "task_a", "rateLimitPerFrequency": 1, "rateLimitFrequencyInSeconds": 10},
    )
    await register(client, flow())
    await start(client)
    await start(client)
    first = await polled(client, "task_a")
    await client.post("/api/tasks", json=result(first))
    assert await poll(client, "task_a") is None
    clock.advance(9_999)
    assert await poll(client, "task_a") is None
    clock.advance(1)
    second = await polled(client, "task_a")
    assert second["taskId"] != first["taskId"]


# -- extendLease --------------------------------------------------------------------------


async def test_extend_lease_only_touches_the_update_time(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await register(client, flow())
    await start(client)
    task = await polled(client, "task_a")
    before = await get_task(client, task["taskId"])
    clock.advance(8_000)
    response = await client.post(
        "/api/tasks",
        json=result(task, "COMPLETED", extendLease=True, outputData={"ignored": True}),
    )
    assert (response.status_code, response.text) == (200, task["taskId"])
    after = await get_task(client, task["taskId"])
    assert after["updateTime"] == before["updateTime"] + 8_000
    assert {k: v for k, v in after.items() if k != "updateTime"} == {
        k: v for k, v in before.items() if k != "updateTime"
    }


async def test_extend_lease_without_a_status_is_accepted(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    await start(client)
    task = await polled(client, "task_a")
    response = await client.post("/api/tasks", json=result(task, None, extendLease=True))
    assert (response.status_code, response.text) == (200, task["taskId"])
    assert (await get_task(client, task["taskId"]))["status"] == "IN_PROGRESS"


async def test_extend_lease_restarts_the_response_timeout(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await task_defs(client, {"name": "task_a", "responseTimeoutSeconds": 10, "retryCount": 0})
    await register(client, flow())
    workflow_id = await start(client)
    task = await polled(client, "task_a")
    clock.advance(8_000)
    await client.post("/api/tasks", json=result(task, "IN_PROGRESS", extendLease=True))
    clock.advance(8_000)  # 16 s after the poll, 8 s after the lease was extended
    await decide(client, workflow_id)
    assert (await get_task(client, task["taskId"]))["status"] == "IN_PROGRESS"
    clock.advance(2_000)
    await decide(client, workflow_id)
    assert (await get_task(client, task["taskId"]))["status"] == "TIMED_OUT"
    assert (await get_wf(client, workflow_id))["status"] == "TIMED_OUT"


async def test_update_of_a_completed_task_is_ignored(client: httpx.AsyncClient) -> None:
    await register(client, flow())
    await start(client)
    task = await polled(client, "task_a")
    await client.post("/api/tasks", json=result(task, outputData={"v": 1}))
    response = await client.post("/api/tasks", json=result(task, "FAILED", outputData={"v": 2}))
    assert (response.status_code, response.text) == (200, task["taskId"])
    stored = await get_task(client, task["taskId"])
    assert (stored["status"], stored["outputData"]) == ("COMPLETED", {"v": 1})


# -- bad request bodies -------------------------------------------------------------------

BAD_BODIES = [
    ("/api/tasks", b'{"taskId": "t1",'),
    ("/api/tasks", b'{"workflowInstanceId": "w", "taskId": "t", "status": "DONE"}'),
    ("/api/tasks", b'{"workflowInstanceId": "w", "taskId": "t", "status": 5}'),
    ("/api/tasks", b'{"workflowInstanceId": "w", "taskId": "t", "outputData": [1]}'),
    (
        "/api/tasks",
        b'{"workflowInstanceId": "w", "taskId": "t", "status": "COMPLETED", '
        b'"callbackAfterSeconds": "soon"}',
    ),
    ("/api/tasks", b"[1, 2]"),
    ("/api/workflow", b'{"name": "flow", "input": '),
    ("/api/workflow", b'{"name": "flow", "priority": "high"}'),
    ("/api/workflow", b'{"name": "flow", "input": [1, 2]}'),
    ("/api/workflow", b'{"name": "flow", "taskToDomain": "blue"}'),
    ("/api/workflow", b'{"name": "flow", "idempotencyStrategy": "MAYBE"}'),
    ("/api/workflow", b'"flow"'),
]


@pytest.mark.parametrize(("path", "content"), BAD_BODIES)
async def test_malformed_or_mistyped_body_is_400(
    client: httpx.AsyncClient, path: str, content: bytes
) -> None:
    await register(client, flow())
    response = await client.post(
        path, content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert (body["status"], body["retryable"]) == (400, False)
    assert (await client.get("/api/workflow/running/flow")).json() == []
