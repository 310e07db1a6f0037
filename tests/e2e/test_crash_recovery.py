"""Kill -9 a server while 100+ workflows are mid-flight; a restarted server on the same
database finishes every one of them, with no task lost."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from tests.conftest import start_server, stop_server
from tests.e2e.support import WorkerStats, admin_client, run_worker, wait_for_statuses

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
