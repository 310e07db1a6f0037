"""HUMAN through the API: it waits IN_PROGRESS for an update, and no worker gets it."""

from __future__ import annotations

import httpx

from tests.api.flows import run, simple, wf


async def test_human_task_waits_for_an_update(client: httpx.AsyncClient) -> None:
    workflow_id = await run(client, [{"name": "h", "taskReferenceName": "h", "type": "HUMAN"}])
    assert (await wf(client, workflow_id))["tasks"][0]["status"] == "IN_PROGRESS"
    await client.post(f"/api/tasks/{workflow_id}/h/COMPLETED", json={})
    assert (await wf(client, workflow_id))["status"] == "COMPLETED"


async def test_no_worker_can_poll_a_human_task(client: httpx.AsyncClient) -> None:
    workflow_id = await run(client, [{"name": "h", "taskReferenceName": "h", "type": "HUMAN"}])
    for task_type in ("HUMAN", "h"):
        r = await client.get(f"/api/tasks/poll/{task_type}", params={"workerid": "w"})
        assert r.status_code == 204
    assert (await wf(client, workflow_id))["tasks"][0]["status"] == "IN_PROGRESS"


async def test_a_human_task_failed_by_an_update_fails_the_workflow(
    client: httpx.AsyncClient,
) -> None:
    workflow_id = await run(client, [{"name": "h", "taskReferenceName": "h", "type": "HUMAN"}])
    r = await client.post(f"/api/tasks/{workflow_id}/h/FAILED", json={"why": "rejected"})
    assert r.status_code == 200
    body = await wf(client, workflow_id)
    assert (body["status"], body["tasks"][0]["status"]) == ("FAILED", "FAILED")
    assert body["tasks"][0]["outputData"] == {"why": "rejected"}


async def test_the_flow_goes_on_after_a_completed_human_task(client: httpx.AsyncClient) -> None:
    tasks = [{"name": "h", "taskReferenceName": "h", "type": "HUMAN"}, simple("next")]
    workflow_id = await run(client, tasks)
    await client.post(f"/api/tasks/{workflow_id}/h/COMPLETED", json={"ok": True})
    body = await wf(client, workflow_id)
    assert [(t["referenceTaskName"], t["status"]) for t in body["tasks"]] == [
        ("h", "COMPLETED"),
        ("next", "SCHEDULED"),
    ]
