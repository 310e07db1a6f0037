"""WAIT through the API: a duration or a date completes it on time, an open wait waits
for an update, bad inputs fail terminally."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from app.clock import ManualClock
from tests.api.flows import drain, run, task_defs, wf


async def test_wait_with_a_duration_completes_when_the_time_comes(
    client: httpx.AsyncClient, api_app: FastAPI, clock: ManualClock
) -> None:
    tasks = [
        {
            "name": "pause",
            "taskReferenceName": "pause",
            "type": "WAIT",
            "inputParameters": {"duration": "30s"},
        }
    ]
    workflow_id = await run(client, tasks)
    assert await drain(api_app) == 0
    clock.advance(30_000)
    assert await drain(api_app) == 1
    assert (await wf(client, workflow_id))["status"] == "COMPLETED"


async def test_open_wait_is_completed_by_an_update_by_reference(client: httpx.AsyncClient) -> None:
    tasks = [{"name": "hold", "taskReferenceName": "hold", "type": "WAIT"}]
    workflow_id = await run(client, tasks)
    r = await client.post(f"/api/tasks/{workflow_id}/hold/COMPLETED", json={"by": "hand"})
    assert r.status_code == 200 and r.text
    body = await wf(client, workflow_id)
    assert (body["status"], body["output"]) == ("COMPLETED", {"by": "hand"})


async def test_wait_until_a_past_time_completes_on_the_next_drain(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    tasks = [
        {
            "name": "pause",
            "taskReferenceName": "pause",
            "type": "WAIT",
            "inputParameters": {"until": "2000-01-01 00:00 UTC"},
        }
    ]
    workflow_id = await run(client, tasks)
    assert (await wf(client, workflow_id))["tasks"][0]["status"] == "IN_PROGRESS"
    assert await drain(api_app) == 1
    body = await wf(client, workflow_id)
    assert (body["status"], body["tasks"][0]["status"]) == ("COMPLETED", "COMPLETED")


def wait(**inputs: Any) -> list[dict[str, Any]]:
    return [
        {"name": "pause", "taskReferenceName": "pause", "type": "WAIT", "inputParameters": inputs}
    ]


async def test_a_compound_duration_adds_up(
    client: httpx.AsyncClient, api_app: FastAPI, clock: ManualClock
) -> None:
    workflow_id = await run(client, wait(duration="1m 30s"))
    clock.advance(89_000)
    assert await drain(api_app) == 0
    clock.advance(1_000)
    assert await drain(api_app) == 1
    assert (await wf(client, workflow_id))["status"] == "COMPLETED"


async def test_wait_until_a_future_date_completes_at_that_date(
    client: httpx.AsyncClient, api_app: FastAPI, clock: ManualClock
) -> None:
    assert clock.now_ms() == 1_700_000_000_000  # 2023-11-14 22:13:20 UTC
    workflow_id = await run(client, wait(until="2023-11-14 22:15 UTC"))
    clock.advance(99_000)
    assert await drain(api_app) == 0
    clock.advance(1_000)
    assert await drain(api_app) == 1
    assert (await wf(client, workflow_id))["status"] == "COMPLETED"


async def test_both_duration_and_until_fail_terminally(client: httpx.AsyncClient) -> None:
    # Registration refuses both in the definition; the TaskDef's template can still add one.
    await task_defs(client, {"name": "pause", "inputTemplate": {"until": "2030-01-01"}})
    body = await wf(client, await run(client, wait(duration="5s")))
    task = body["tasks"][0]
    assert task["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert task["reasonForIncompletion"] == (
        "Both 'duration' and 'until' specified. Please provide only one input"
    )
    assert body["status"] == "FAILED"


async def test_an_unparseable_date_fails_terminally(client: httpx.AsyncClient) -> None:
    body = await wf(client, await run(client, wait(until="${workflow.input.u}"), {"u": "soon"}))
    task = body["tasks"][0]
    assert task["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert task["reasonForIncompletion"] == "Unable to parse date: soon"


async def test_an_unparseable_duration_fails_terminally(client: httpx.AsyncClient) -> None:
    body = await wf(client, await run(client, wait(duration="${workflow.input.d}"), {"d": "ages"}))
    task = body["tasks"][0]
    assert task["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert task["reasonForIncompletion"] == "Unable to parse duration: ages"


async def test_a_timed_wait_can_be_completed_early_by_an_update(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    workflow_id = await run(client, wait(duration="1d"))
    r = await client.post(f"/api/tasks/{workflow_id}/pause/COMPLETED", json={"early": True})
    assert r.status_code == 200
    assert (await wf(client, workflow_id))["status"] == "COMPLETED"
    assert await drain(api_app) == 0
