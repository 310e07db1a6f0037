"""Two Baton processes on one Postgres, workers polling both: every one of 500 worker tasks
is handed out exactly once, and every workflow completes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.conftest import start_server, stop_server
from tests.e2e.support import WorkerStats, admin_client, run_worker, wait_for_statuses

TASKS = 500


@pytest.mark.timeout(240)
async def test_each_task_is_handed_out_once_across_two_servers(
    backend: str, database_url: str, tmp_path: Path
) -> None:
    if backend != "postgres":
        pytest.skip("scale-out runs on Postgres; SQLite is one process by design")
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    first = start_server(database_url, tmp_path / "a")
    second = start_server(database_url, tmp_path / "b")
    stop = asyncio.Event()
    stats = WorkerStats()
    try:
        async with admin_client(first.url) as c:
            await c.post(
                "/api/metadata/taskdefs",
                json=[{"name": "shared_step", "responseTimeoutSeconds": 600}],
            )
            definition = {
                "name": "shared_flow",
                "version": 1,
                "tasks": [{"name": "shared_step", "taskReferenceName": "only", "type": "SIMPLE"}],
            }
            assert (await c.post("/api/metadata/workflow", json=definition)).status_code == 200
        urls = [first.url, second.url]
        workers = [
            asyncio.create_task(
                run_worker(urls, "shared_step", stop, stats, worker_id=f"w{i}", deadline_s=200)
            )
            for i in range(4)
        ]
        ids: list[str] = []
        clients = [admin_client(u) for u in urls]
        try:
            for n in range(TASKS):
                r = await clients[n % 2].post("/api/workflow/shared_flow", json={"n": n})
                assert r.status_code == 200, r.text
                ids.append(r.text)
            statuses = await wait_for_statuses(clients[0], ids, 150, frozenset({"COMPLETED"}))
        finally:
            stop.set()
            await asyncio.gather(*workers)
            for c in clients:
                await c.aclose()
        duplicates = {t: n for t, n in stats.handed_out.items() if n > 1}
        assert duplicates == {}
        assert len(stats.handed_out) == TASKS
        assert sum(1 for s in statuses.values() if s == "COMPLETED") == TASKS
    finally:
        stop_server(first)
        stop_server(second)
