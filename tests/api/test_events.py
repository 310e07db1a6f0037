"""Event handlers (/api/event), the EVENT task on Baton's internal `conductor` queue, the
default event queue updates (/api/queue/update) and workflow signals (/api/tasks/.../signal)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from app.services.events import ACTION_QUEUE, MAX_INLINE_STARTS

FLOW = "emitter"


def handler(
    name: str = "h1", event: str = f"conductor:{FLOW}:emit", **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "event": event,
        "actions": [
            {
                "action": "start_workflow",
                "start_workflow": {
                    "name": "target",
                    "correlationId": "${workflowInstanceId}",
                    "input": {"orderId": "${orderId}", "fixed": 1},
                },
            }
        ],
    }
    body.update(extra)
    return body


def event_task(sink: str = "conductor", **extra: Any) -> dict[str, Any]:
    return {
        "name": "emit",
        "taskReferenceName": "emit",
        "type": "EVENT",
        "sink": sink,
        "inputParameters": {"orderId": "${workflow.input.orderId}"},
        **extra,
    }


def wait(ref: str = "hold") -> dict[str, Any]:
    return {"name": ref, "taskReferenceName": ref, "type": "WAIT"}


async def define(client: httpx.AsyncClient, name: str, tasks: list[dict[str, Any]]) -> None:
    definition = {"name": name, "version": 1, "tasks": tasks}
    r = await client.post("/api/metadata/workflow", params={"overwrite": "true"}, json=definition)
    assert r.status_code == 200, r.text


async def start(client: httpx.AsyncClient, name: str, wf_input: dict[str, Any]) -> str:
    r = await client.post(f"/api/workflow/{name}", json=wf_input)
    assert r.status_code == 200, r.text
    return r.text


async def wf(client: httpx.AsyncClient, workflow_id: str) -> dict[str, Any]:
    r = await client.get(f"/api/workflow/{workflow_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def add(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    r = await client.post("/api/event", json=body)
    assert r.status_code == 200, r.text


async def drain(api_app: FastAPI) -> int:
    done: int = await api_app.state.services.runner.drain()
    return done


async def started_by(client: httpx.AsyncClient, name: str, correlation_id: str) -> list[Any]:
    r = await client.get(
        f"/api/workflow/{name}/correlated/{correlation_id}",
        params={"includeClosed": "true", "includeTasks": "true"},
    )
    assert r.status_code == 200, r.text
    found: list[Any] = r.json()
    return found


# -- handler CRUD -----------------------------------------------------------------------------


async def test_handlers_are_added_listed_updated_and_removed(client: httpx.AsyncClient) -> None:
    await add(client, handler("h1"))
    await add(client, handler("h2", event="conductor:other:x", active=False))
    listed = (await client.get("/api/event")).json()
    assert [h["name"] for h in listed] == ["h1", "h2"]
    assert listed[0]["active"] is True  # Baton's default

    r = await client.get(f"/api/event/conductor:{FLOW}:emit")
    assert [h["name"] for h in r.json()] == ["h1"]
    assert (await client.get("/api/event/conductor:other:x")).json() == []
    inactive = await client.get("/api/event/conductor:other:x", params={"activeOnly": "false"})
    assert [h["name"] for h in inactive.json()] == ["h2"]

    updated = handler("h1", event="conductor:other:x", condition="$.orderId > 0")
    assert (await client.put("/api/event", json=updated)).status_code == 200
    r = await client.get("/api/event/conductor:other:x")
    assert [(h["name"], h.get("condition")) for h in r.json()] == [("h1", "$.orderId > 0")]

    assert (await client.delete("/api/event/h1")).status_code == 200
    assert [h["name"] for h in (await client.get("/api/event")).json()] == ["h2"]


async def test_a_duplicate_name_is_a_conflict(client: httpx.AsyncClient) -> None:
    await add(client, handler("dup"))
    r = await client.post("/api/event", json=handler("dup"))
    assert r.status_code == 409
    assert r.json()["message"] == "EventHandler with name dup already exists!"


async def test_updating_or_removing_a_missing_handler_is_not_found(
    client: httpx.AsyncClient,
) -> None:
    r = await client.put("/api/event", json=handler("nope"))
    assert (r.status_code, r.json()["message"]) == (404, "EventHandler with name nope not found!")
    r = await client.delete("/api/event/nope")
    assert (r.status_code, r.json()["message"]) == (404, "EventHandler with name nope not found!")


async def test_an_empty_handler_lists_conductors_three_errors(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/event", json={})
    assert r.status_code == 400
    messages = {e["message"] for e in r.json()["validationErrors"]}
    assert messages == {
        "Missing event handler name",
        "Missing event location",
        "No actions specified. Please specify at-least one action",
    }


async def test_unsupported_actions_and_incomplete_ones_are_rejected(
    client: httpx.AsyncClient,
) -> None:
    body = handler(
        "bad",
        actions=[
            {"action": "terminate_workflow"},
            {"action": "complete_task", "complete_task": {"workflowId": "w"}},
            {"action": "start_workflow", "start_workflow": {}},
        ],
    )
    r = await client.post("/api/event", json=body)
    assert r.status_code == 400
    paths = [e["path"] for e in r.json()["validationErrors"]]
    assert paths == [
        "actions[0].action",
        "actions[1].complete_task",
        "actions[2].start_workflow.name",
    ]
    assert (await client.get("/api/event")).json() == []


async def test_events_of_other_brokers_are_rejected(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/event", json=handler("sqs", event="sqs:my-queue"))
    assert r.status_code == 400
    error = r.json()["validationErrors"][0]
    assert error["message"] == "Event type sqs is not supported by Baton (only conductor)"


# -- the EVENT task ---------------------------------------------------------------------------


async def test_event_task_starts_a_workflow_through_a_handler(client: httpx.AsyncClient) -> None:
    await define(client, "target", [wait()])
    await define(client, FLOW, [event_task()])
    await add(client, handler())
    workflow_id = await start(client, FLOW, {"orderId": 7})

    body = await wf(client, workflow_id)
    task = body["tasks"][0]
    assert (body["status"], task["status"]) == ("COMPLETED", "COMPLETED")
    assert task["inputData"]["sink"] == "conductor"
    output = task["outputData"]
    assert output["event_produced"] == f"conductor:{FLOW}:emit"
    assert (output["workflowInstanceId"], output["workflowType"]) == (workflow_id, FLOW)
    assert (output["workflowVersion"], output["orderId"]) == (1, 7)

    # Started in the EVENT task's own transaction: there as soon as the start returns.
    [child] = await started_by(client, "target", workflow_id)
    assert child["status"] == "RUNNING"
    assert child["event"] == f"conductor:{FLOW}:emit"
    assert child["input"] == {
        "orderId": 7,
        "fixed": 1,
        "conductor.event.messageId": task["taskId"],
        "conductor.event.name": f"conductor:{FLOW}:emit",
    }


async def test_a_named_conductor_sink_and_a_condition(client: httpx.AsyncClient) -> None:
    await define(client, "target", [wait()])
    await define(client, FLOW, [event_task("conductor:orders")])
    await add(client, handler(event=f"conductor:{FLOW}:orders", condition="$.orderId > 10"))
    small = await start(client, FLOW, {"orderId": 3})
    big = await start(client, FLOW, {"orderId": 30})
    produced = (await wf(client, big))["tasks"][0]["outputData"]["event_produced"]
    assert produced == f"conductor:{FLOW}:orders"
    assert await started_by(client, "target", small) == []
    assert len(await started_by(client, "target", big)) == 1


async def test_inactive_handlers_are_ignored(client: httpx.AsyncClient) -> None:
    await define(client, "target", [wait()])
    await define(client, FLOW, [event_task()])
    await add(client, handler(active=False))
    workflow_id = await start(client, FLOW, {"orderId": 1})
    assert (await wf(client, workflow_id))["status"] == "COMPLETED"
    assert await started_by(client, "target", workflow_id) == []


async def test_complete_task_completes_a_wait_in_another_workflow(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    await define(client, "waiter", [wait("hold")])
    waiter = await start(client, "waiter", {})
    await define(client, FLOW, [event_task(inputParameters={"target": "${workflow.input.target}"})])
    body = handler(
        actions=[
            {
                "action": "complete_task",
                "complete_task": {
                    "workflowId": "${target}",
                    "taskRefName": "hold",
                    "output": {"approvedBy": "${workflowType}"},
                },
            }
        ]
    )
    await add(client, body)
    emitter = await start(client, FLOW, {"target": waiter})
    # Applied after the EVENT task's transaction, by the runner.
    assert (await wf(client, waiter))["status"] == "RUNNING"
    assert await drain(api_app) == 1
    done = await wf(client, waiter)
    assert done["status"] == "COMPLETED"
    output = done["tasks"][0]["outputData"]
    assert output["approvedBy"] == FLOW
    assert output["conductor.event.name"] == f"conductor:{FLOW}:emit"
    emit_task_id = (await wf(client, emitter))["tasks"][0]["taskId"]
    assert output["conductor.event.messageId"] == emit_task_id
    assert await drain(api_app) == 0  # the action ran once and is gone


async def test_fail_task_by_task_id_fails_the_other_workflow(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    await define(client, "waiter", [wait("hold")])
    waiter = await start(client, "waiter", {})
    hold_id = (await wf(client, waiter))["tasks"][0]["taskId"]
    await define(client, FLOW, [event_task(inputParameters={"taskId": hold_id})])
    body = handler(
        actions=[
            {
                "action": "fail_task",
                "fail_task": {"taskId": "${taskId}", "reasonForIncompletion": "rejected"},
            }
        ]
    )
    await add(client, body)
    await start(client, FLOW, {})
    await drain(api_app)
    done = await wf(client, waiter)
    assert done["status"] == "FAILED"
    assert done["tasks"][0]["status"] == "FAILED"
    assert done["tasks"][0]["reasonForIncompletion"] == "rejected"


async def test_an_action_on_a_missing_workflow_is_dropped(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    await define(client, FLOW, [event_task()])
    action = {"workflowId": "no-such-workflow", "taskRefName": "hold"}
    await add(client, handler(actions=[{"action": "complete_task", "complete_task": action}]))
    workflow_id = await start(client, FLOW, {})
    assert (await wf(client, workflow_id))["status"] == "COMPLETED"
    assert await drain(api_app) == 1
    assert await drain(api_app) == 0


async def test_an_unsupported_sink_type_fails_the_task(client: httpx.AsyncClient) -> None:
    await define(client, FLOW, [event_task("sqs:my-queue")])
    workflow_id = await start(client, FLOW, {})
    body = await wf(client, workflow_id)
    task = body["tasks"][0]
    assert (body["status"], task["status"]) == ("FAILED", "FAILED_WITH_TERMINAL_ERROR")
    assert task["reasonForIncompletion"] == (
        "Event sink type sqs is not supported by Baton (only conductor)"
    )


async def test_async_complete_keeps_the_event_task_in_progress(
    client: httpx.AsyncClient,
) -> None:
    await define(client, FLOW, [event_task(asyncComplete=True)])
    workflow_id = await start(client, FLOW, {})
    task = (await wf(client, workflow_id))["tasks"][0]
    assert task["status"] == "IN_PROGRESS"
    assert task["outputData"]["event_produced"] == f"conductor:{FLOW}:emit"
    r = await client.post(f"/api/tasks/{workflow_id}/emit/COMPLETED", json={})
    assert r.status_code == 200
    assert (await wf(client, workflow_id))["status"] == "COMPLETED"


# -- signals ----------------------------------------------------------------------------------


async def test_signal_completes_the_blocking_wait(client: httpx.AsyncClient) -> None:
    await define(client, "approval", [wait("approve"), wait("ship")])
    workflow_id = await start(client, "approval", {})
    r = await client.post(f"/api/tasks/{workflow_id}/COMPLETED/signal", json={"ok": True})
    assert r.status_code == 200, r.text
    tasks = (await wf(client, workflow_id))["tasks"]
    assert [(t["referenceTaskName"], t["status"]) for t in tasks] == [
        ("approve", "COMPLETED"),
        ("ship", "IN_PROGRESS"),
    ]
    assert tasks[0]["outputData"] == {"ok": True}


async def test_signal_reaches_a_wait_in_a_running_sub_workflow(client: httpx.AsyncClient) -> None:
    await define(client, "child", [wait("inner")])
    sub = {
        "name": "sub",
        "taskReferenceName": "sub",
        "type": "SUB_WORKFLOW",
        "subWorkflowParam": {"name": "child", "version": 1},
    }
    await define(client, "parent", [sub])
    parent = await start(client, "parent", {})
    child_id = (await wf(client, parent))["tasks"][0]["subWorkflowId"]
    r = await client.post(f"/api/tasks/{parent}/COMPLETED/signal", json={"v": 1})
    assert r.status_code == 200, r.text
    child = await wf(client, child_id)
    assert (child["status"], child["tasks"][0]["outputData"]) == ("COMPLETED", {"v": 1})


async def test_signal_without_a_blocking_wait_is_not_found(client: httpx.AsyncClient) -> None:
    await define(client, "human", [{"name": "h", "taskReferenceName": "h", "type": "HUMAN"}])
    workflow_id = await start(client, "human", {})
    r = await client.post(f"/api/tasks/{workflow_id}/COMPLETED/signal", json={})
    assert r.status_code == 404  # HUMAN tasks are not signalled, as in Conductor
    r = await client.post(f"/api/tasks/{workflow_id}/COMPLETED/signal/sync", json={})
    assert r.status_code == 404
    r = await client.post("/api/tasks/no-such-workflow/COMPLETED/signal", json={})
    assert r.status_code == 404
    r = await client.post(f"/api/tasks/{workflow_id}/SKIPPED/signal", json={})
    assert r.status_code == 400


async def test_signal_sync_returns_the_workflow(client: httpx.AsyncClient) -> None:
    await define(client, "approval", [wait("approve"), wait("ship")])
    workflow_id = await start(client, "approval", {})
    r = await client.post(f"/api/tasks/{workflow_id}/COMPLETED/signal/sync", json={"a": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["workflowId"], body["status"]) == (workflow_id, "RUNNING")
    assert (body["responseType"], body["targetWorkflowId"]) == ("TARGET_WORKFLOW", workflow_id)
    assert [t["status"] for t in body["tasks"]] == ["COMPLETED", "IN_PROGRESS"]

    r = await client.post(
        f"/api/tasks/{workflow_id}/COMPLETED/signal/sync",
        params={"returnStrategy": "BLOCKING_TASK"},
        json={},
    )
    body = r.json()
    # The last WAIT completed the workflow: nothing blocks, so the target workflow answers.
    assert (body["responseType"], body["status"]) == ("TARGET_WORKFLOW", "COMPLETED")


async def test_signal_sync_can_answer_with_the_next_blocking_task(
    client: httpx.AsyncClient,
) -> None:
    await define(client, "approval", [wait("approve"), wait("ship")])
    workflow_id = await start(client, "approval", {})
    r = await client.post(
        f"/api/tasks/{workflow_id}/COMPLETED/signal/sync",
        params={"returnStrategy": "BLOCKING_TASK"},
        json={},
    )
    body = r.json()
    assert (body["responseType"], body["referenceTaskName"]) == ("BLOCKING_TASK", "ship")
    assert (body["workflowId"], body["targetWorkflowStatus"]) == (workflow_id, "RUNNING")
    r = await client.post(
        f"/api/tasks/{workflow_id}/COMPLETED/signal/sync",
        params={"returnStrategy": "NEWEST"},
        json={},
    )
    assert r.status_code == 400


# -- default event queue updates --------------------------------------------------------------


async def test_queue_update_by_reference_completes_a_wait(client: httpx.AsyncClient) -> None:
    await define(client, "waiter", [wait("hold")])
    workflow_id = await start(client, "waiter", {})
    r = await client.post(f"/api/queue/update/{workflow_id}/hold/COMPLETED", json={"x": 1})
    assert r.status_code == 200, r.text
    body = await wf(client, workflow_id)
    assert (body["status"], body["tasks"][0]["outputData"]) == ("COMPLETED", {"x": 1})


async def test_queue_update_by_task_id_fails_a_wait(client: httpx.AsyncClient) -> None:
    await define(client, "waiter", [wait("hold")])
    workflow_id = await start(client, "waiter", {})
    task_id = (await wf(client, workflow_id))["tasks"][0]["taskId"]
    r = await client.post(f"/api/queue/update/{workflow_id}/task/{task_id}/FAILED", json={})
    assert r.status_code == 200, r.text
    assert (await wf(client, workflow_id))["status"] == "FAILED"


async def test_queue_update_only_knows_completed_and_failed(client: httpx.AsyncClient) -> None:
    await define(client, "waiter", [wait("hold")])
    workflow_id = await start(client, "waiter", {})
    r = await client.post(f"/api/queue/update/{workflow_id}/hold/IN_PROGRESS", json={})
    assert r.status_code == 400
    assert r.json()["message"] == "There is no queue for handling IN_PROGRESS status"


async def test_inline_json_in_the_payload_can_be_expanded(client: httpx.AsyncClient) -> None:
    await define(client, "target", [wait()])
    emit = event_task(inputParameters={"order": '{"id": 42, "tags": ["a"]}'})
    await define(client, FLOW, [emit])
    start_action = {
        "name": "target",
        "correlationId": "${workflowInstanceId}",
        "input": {"id": "${order.id}", "tags": "${order.tags}"},
    }
    action = {"action": "start_workflow", "start_workflow": start_action, "expandInlineJSON": True}
    await add(client, handler(actions=[action]))
    workflow_id = await start(client, FLOW, {})
    [child] = await started_by(client, "target", workflow_id)
    assert (child["input"]["id"], child["input"]["tags"]) == (42, ["a"])


async def test_a_handler_cycle_is_cut_into_queued_steps(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    # A handler that starts the very workflow whose event triggers it: a few levels run
    # inline, the next start waits on the action queue instead of recursing.
    await define(client, FLOW, [event_task()])
    action = {"name": FLOW, "correlationId": "${correlationId}"}
    await add(client, handler(actions=[{"action": "start_workflow", "start_workflow": action}]))
    r = await client.post("/api/workflow", json={"name": FLOW, "correlationId": "c1", "input": {}})
    assert r.status_code == 200, r.text
    assert len(await started_by(client, FLOW, "c1")) == 1 + MAX_INLINE_STARTS
    executor = api_app.state.services.executor
    [item] = await executor.lease_system(ACTION_QUEUE, 10, 60_000)
    await executor.run_system_item(ACTION_QUEUE, item)
    assert len(await started_by(client, FLOW, "c1")) == 2 * (1 + MAX_INLINE_STARTS)
