"""NOOP through the API: it completes at once and the flow goes on."""

from __future__ import annotations

import httpx

from tests.api.flows import run, simple, wf


async def test_noop_completes_at_once(client: httpx.AsyncClient) -> None:
    body = await wf(
        client, await run(client, [{"name": "n", "taskReferenceName": "n", "type": "NOOP"}])
    )
    assert body["status"] == "COMPLETED"


async def test_the_flow_goes_on_after_a_noop(client: httpx.AsyncClient) -> None:
    tasks = [{"name": "n", "taskReferenceName": "n", "type": "NOOP"}, simple("next")]
    body = await wf(client, await run(client, tasks))
    assert [(t["referenceTaskName"], t["status"]) for t in body["tasks"]] == [
        ("n", "COMPLETED"),
        ("next", "SCHEDULED"),
    ]
    assert body["tasks"][0]["outputData"] == {}
