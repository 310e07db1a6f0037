"""The scheduler in real `baton serve` processes: a two-second schedule fires on time with
APScheduler as the timer, two processes on one Postgres start one workflow per slot, and the
official conductor-python SchedulerClient works against Baton."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from conductor.client.ai.schedule import _translate
from conductor.client.ai.schedule_errors import InvalidCronExpression
from conductor.client.configuration.configuration import Configuration
from conductor.client.configuration.settings.authentication_settings import (
    AuthenticationSettings,
)
from conductor.client.http.models.save_schedule_request import SaveScheduleRequest
from conductor.client.http.models.start_workflow_request import StartWorkflowRequest
from conductor.client.http.rest import ApiException
from conductor.client.orkes.orkes_scheduler_client import OrkesSchedulerClient

from tests.conftest import ServerProcess, start_server, stop_server
from tests.e2e.support import admin_client

Json = dict[str, Any]

TICK_FLOW = {
    "name": "tick_flow",
    "version": 1,
    "tasks": [{"name": "tick_task", "taskReferenceName": "tick", "type": "SIMPLE"}],
}


async def _setup(c: httpx.AsyncClient, name: str, cron: str) -> None:
    assert (await c.post("/api/metadata/workflow", json=TICK_FLOW)).status_code == 200
    body = {
        "name": name,
        "cronExpression": cron,
        "startWorkflowRequest": {"name": "tick_flow", "input": {"from": "e2e"}},
    }
    response = await c.post("/api/scheduler/schedules", json=body)
    assert response.status_code == 200, response.text


async def _records(c: httpx.AsyncClient) -> list[Json]:
    response = await c.get(
        "/api/scheduler/search/executions",
        params={"query": "*", "sort": "scheduledTime:ASC", "size": 1000},
    )
    assert response.status_code == 200, response.text
    results: list[Json] = response.json()["results"]
    return results


async def _wait_for_records(c: httpx.AsyncClient, count: int, timeout_s: float) -> list[Json]:
    end = time.monotonic() + timeout_s
    records = await _records(c)
    while len(records) < count and time.monotonic() < end:
        await asyncio.sleep(0.2)
        records = await _records(c)
    return records


@pytest.mark.timeout(60)
async def test_a_two_second_schedule_fires_on_time_in_a_real_server(
    server: ServerProcess,
) -> None:
    async with admin_client(server.url) as c:
        await _setup(c, "tick", "*/2 * * * * *")
        records = await _wait_for_records(c, 3, timeout_s=10)
        assert (await c.put("/api/scheduler/schedules/tick/pause")).status_code == 200
        records = await _records(c)
        assert len(records) >= 3, server.log()
        slots = [r["scheduledTime"] for r in records]
        assert all(s % 2000 == 0 for s in slots)
        assert [b - a for a, b in itertools.pairwise(slots)] == [2000] * (len(slots) - 1)
        # The timer wakes at the slot, not at the next safety re-scan.
        assert all(0 <= r["executionTime"] - r["scheduledTime"] < 1000 for r in records)
        for record in records:
            assert record["state"] == "EXECUTED"
            started = (await c.get(f"/api/workflow/{record['workflowId']}")).json()
            assert started["input"]["_scheduledTime"] == record["scheduledTime"]
            assert started["input"]["from"] == "e2e"
        # Paused: no slot fires any more.
        await asyncio.sleep(2.5)
        assert len(await _records(c)) == len(records)


def _fired(metrics_text: str) -> int:
    match = re.search(
        r'^baton_scheduler_slots_total\{outcome="fired",schedule="every_second"\} (\S+)$',
        metrics_text,
        re.MULTILINE,
    )
    return int(float(match.group(1))) if match else 0


@pytest.mark.timeout(120)
async def test_two_processes_on_postgres_start_one_workflow_per_slot(
    backend: str, database_url: str, tmp_path: Path
) -> None:
    if backend != "postgres":
        pytest.skip("several processes share Postgres; SQLite is one process by design")
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    first = start_server(database_url, tmp_path / "a")
    second = start_server(database_url, tmp_path / "b")
    try:
        async with admin_client(first.url) as a, admin_client(second.url) as b:
            await _setup(a, "every_second", "* * * * * *")
            await _wait_for_records(a, 5, timeout_s=15)
            assert (await b.put("/api/scheduler/schedules/every_second/pause")).status_code == 200
            records = await _records(a)
            assert len(records) >= 5
            slots = [r["scheduledTime"] for r in records]
            assert len(set(slots)) == len(slots), "a slot fired twice"
            search = await a.get(
                "/api/workflow/search", params={"query": "workflowType='tick_flow'", "size": 100}
            )
            assert search.json()["totalHits"] == len(records)
            # Each process counts what it fired itself: together, once per slot.
            fired = [_fired((await c.get("/metrics")).text) for c in (a, b)]
            assert sum(fired) == len(records), fired
    finally:
        stop_server(first)
        stop_server(second)


# -- the official Python SDK --------------------------------------------------------------


@pytest.fixture
def scheduler_client(server: ServerProcess) -> OrkesSchedulerClient:
    auth = AuthenticationSettings(key_id=server.admin_key_id, key_secret=server.admin_key_secret)
    return OrkesSchedulerClient(
        Configuration(server_api_url=f"{server.url}/api", authentication_settings=auth)
    )


def _sdk_schedule(cron: str) -> SaveScheduleRequest:
    return SaveScheduleRequest(
        name="sdk_schedule",
        cron_expression=cron,
        zone_id="UTC",
        description="from the SDK",
        start_workflow_request=StartWorkflowRequest(name="tick_flow", input={"a": 1}),
    )


def test_the_sdk_scheduler_client_manages_a_schedule(
    server: ServerProcess, scheduler_client: OrkesSchedulerClient
) -> None:
    headers = server.auth_headers()
    httpx.post(f"{server.url}/api/metadata/workflow", json=TICK_FLOW, headers=headers, timeout=10)
    with pytest.raises(ApiException) as rejected:
        scheduler_client.save_schedule(_sdk_schedule("0 0 * * *"))  # five fields
    assert isinstance(_translate(rejected.value), InvalidCronExpression)

    scheduler_client.save_schedule(_sdk_schedule("0 0 * * * *"))
    fetched = scheduler_client.get_schedule("sdk_schedule")
    assert fetched is not None
    assert (fetched.name, fetched.cron_expression, fetched.description) == (
        "sdk_schedule",
        "0 0 * * * *",
        "from the SDK",
    )
    assert fetched.start_workflow_request.input == {"a": 1}
    listed = scheduler_client.get_all_schedules(workflow_name="tick_flow")
    assert [s.name for s in listed] == ["sdk_schedule"]

    scheduler_client.pause_schedule("sdk_schedule", reason="testing")
    paused = scheduler_client.get_schedule("sdk_schedule")
    assert paused is not None
    assert (paused.paused, paused.paused_reason) == (True, "testing")
    scheduler_client.resume_schedule("sdk_schedule")
    resumed = scheduler_client.get_schedule("sdk_schedule")
    assert resumed is not None and resumed.paused is False

    times = scheduler_client.get_next_few_schedule_execution_times("0 0 * * * *", limit=2)
    assert len(times) == 2 and times[1] - times[0] == 3_600_000

    run = httpx.post(
        f"{server.url}/api/scheduler/schedules/sdk_schedule/run", headers=headers, timeout=10
    )
    assert run.status_code == 200, run.text
    found = scheduler_client.search_schedule_executions(query="scheduleName IN (sdk_schedule)")
    assert found.total_hits == 1
    assert (found.results[0].state, found.results[0].workflow_id) == (
        "EXECUTED",
        run.json()["workflowId"],
    )

    scheduler_client.delete_schedule("sdk_schedule")
    with pytest.raises(ApiException) as missing:
        scheduler_client.get_schedule("sdk_schedule")
    assert missing.value.status == 404
