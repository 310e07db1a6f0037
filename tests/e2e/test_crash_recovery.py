"""Kill -9 a server while 100+ workflows are mid-flight; a restarted server on the same
database finishes every one of them, with no task lost. The same for HTTP calls in flight,
which the server handed straight to its own runner (leased to it, never claimed)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import start_server, stop_server
from tests.e2e.support import WorkerStats, admin_client, run_worker, wait_for_statuses
from tests.held_endpoint import Held, held_endpoint

WORKFLOWS = 120
STEPS = 3


@pytest.mark.timeout(240)
async def test_every_workflow_completes_after_a_kill_9(database_url: str, tmp_path: Path) -> None:
    server = start_server(database_url, tmp_path)
    restarted = None
    stop = asyncio.Event()
    stats = WorkerStats()
    try:
        async with admin_client(server.url) as c:
            # A short response timeout lets a task whose poll answer died with the server
            # be handed out again after the restart.
            r = await c.post(
                "/api/metadata/taskdefs",
                json=[
                    {
                        "name": "crash_step",
                        "responseTimeoutSeconds": 2,
                        "retryCount": 5,
                        "retryDelaySeconds": 0,
                    }
                ],
            )
            assert r.status_code == 200, r.text
            definition = {
                "name": "crash_flow",
                "version": 1,
                "tasks": [
                    {"name": "crash_step", "taskReferenceName": f"s{i}", "type": "SIMPLE"}
                    for i in range(STEPS)
                ],
            }
            assert (await c.post("/api/metadata/workflow", json=definition)).status_code == 200
            ids = []
            for n in range(WORKFLOWS):
                r = await c.post("/api/workflow/crash_flow", json={"n": n})
                assert r.status_code == 200, r.text
                ids.append(r.text)

        worker = asyncio.create_task(
            run_worker([server.url], "crash_step", stop, stats, count=5, deadline_s=200)
        )
        # Let some of the work happen, then kill the server without warning.
        for _ in range(200):
            if stats.completed >= WORKFLOWS:
                break
            await asyncio.sleep(0.05)
        assert 0 < stats.completed < WORKFLOWS * STEPS, "the kill must land mid-flight"
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
        stop.set()
        await worker

        restarted = start_server(database_url, tmp_path)
        stop = asyncio.Event()
        worker = asyncio.create_task(
            run_worker([restarted.url], "crash_step", stop, stats, count=5, deadline_s=200)
        )
        async with admin_client(restarted.url) as c:
            statuses = await wait_for_statuses(
                c, ids, 150, frozenset({"COMPLETED", "FAILED", "TERMINATED", "TIMED_OUT"})
            )
            stop.set()
            await worker
            assert sorted(set(statuses.values())) == ["COMPLETED"], statuses
            assert len(statuses) == WORKFLOWS
            for workflow_id in ids[:10]:
                wf = (await c.get(f"/api/workflow/{workflow_id}")).json()
                done = [t for t in wf["tasks"] if t["status"] == "COMPLETED"]
                assert sorted(t["referenceTaskName"] for t in done) == [
                    f"s{i}" for i in range(STEPS)
                ]
    finally:
        stop.set()
        stop_server(server)
        if restarted is not None:
            stop_server(restarted)


HTTP_WORKFLOWS = 20


@pytest.fixture
def held() -> Iterator[tuple[Held, str]]:
    with held_endpoint(60) as endpoint:
        yield endpoint


@pytest.mark.timeout(180)
async def test_http_calls_in_flight_at_a_kill_9_run_again_after_a_restart(
    database_url: str, tmp_path: Path, held: tuple[Held, str]
) -> None:
    state, uri = held
    server = start_server(database_url, tmp_path)
    restarted = None
    try:
        async with admin_client(server.url) as c:
            call = {"http_request": {"uri": uri, "method": "GET"}}
            definition = {
                "name": "crash_http",
                "version": 1,
                "tasks": [
                    {"name": "c", "taskReferenceName": "c", "type": "HTTP", "inputParameters": call}
                ],
            }
            assert (await c.post("/api/metadata/workflow", json=definition)).status_code == 200
            ids = []
            for _ in range(HTTP_WORKFLOWS):
                r = await c.post("/api/workflow/crash_http", json={})
                assert r.status_code == 200, r.text
                ids.append(r.text)
        deadline = time.monotonic() + 30
        while state.arrived < HTTP_WORKFLOWS and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert state.arrived == HTTP_WORKFLOWS, "every call must be in flight at the kill"
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)

        restarted = start_server(database_url, tmp_path)
        state.opened.set()
        async with admin_client(restarted.url) as c:
            statuses = await wait_for_statuses(
                c, ids, 60, frozenset({"COMPLETED", "FAILED", "TERMINATED", "TIMED_OUT"})
            )
        assert sorted(set(statuses.values())) == ["COMPLETED"], statuses
        assert len(statuses) == HTTP_WORKFLOWS
        assert state.arrived >= 2 * HTTP_WORKFLOWS  # each call made again after the restart
    finally:
        stop_server(server)
        if restarted is not None:
            stop_server(restarted)
