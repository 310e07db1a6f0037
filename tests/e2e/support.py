"""Helpers for end-to-end tests against real `baton serve` processes: an authenticated
client, a bounded worker loop, and waiting for workflows to finish."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.conftest import ADMIN_KEY_ID, ADMIN_KEY_SECRET, TokenAuth


def admin_client(base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url, auth=TokenAuth(ADMIN_KEY_ID, ADMIN_KEY_SECRET), timeout=30
    )


@dataclass
class WorkerStats:
    handed_out: Counter[str] = field(default_factory=Counter)
    completed: int = 0
    errors: int = 0


async def run_worker(
    base_urls: list[str],
    task_type: str,
    stop: asyncio.Event,
    stats: WorkerStats,
    *,
    worker_id: str = "w",
    count: int = 10,
    deadline_s: float = 120.0,
) -> None:
    """Batch-poll and complete tasks until `stop` is set or the deadline passes. Survives
    servers going away (kill -9): failed calls are retried on the next round."""
    clients = [admin_client(url) for url in base_urls]
    pending: list[tuple[int, dict[str, Any]]] = []
    end = time.monotonic() + deadline_s
    turn = 0
    try:
        while not stop.is_set() and time.monotonic() < end:
            turn += 1
            which = turn % len(clients)
            c = clients[which]
            try:
                response = await c.get(
                    f"/api/tasks/poll/batch/{task_type}",
                    params={"count": count, "timeout": 100, "workerid": worker_id},
                )
                if response.status_code == 200:
                    for task in response.json():
                        stats.handed_out[task["taskId"]] += 1
                        pending.append((which, task))
            except httpx.TransportError:
                stats.errors += 1
                await asyncio.sleep(0.05)
            still: list[tuple[int, dict[str, Any]]] = []
            for index, task in pending:
                result = {
                    "workflowInstanceId": task["workflowInstanceId"],
                    "taskId": task["taskId"],
                    "status": "COMPLETED",
                    "outputData": {"by": worker_id, "ref": task["referenceTaskName"]},
                }
                try:
                    r = await clients[index].post("/api/tasks", json=result)
                    if r.status_code == 200:
                        stats.completed += 1
                        continue
                except httpx.TransportError:
                    stats.errors += 1
                still.append((index, task))
            pending = still
    finally:
        for c in clients:
            await c.aclose()


async def wait_for_statuses(
    client: httpx.AsyncClient, ids: list[str], timeout_s: float, done: frozenset[str]
) -> dict[str, str]:
    """Poll each workflow's status until all are in `done` or the time runs out."""
    statuses: dict[str, str] = {}
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        for workflow_id in ids:
            if statuses.get(workflow_id) in done:
                continue
            try:
                r = await client.get(f"/api/workflow/{workflow_id}/status")
            except httpx.TransportError:
                continue
            if r.status_code == 200:
                statuses[workflow_id] = r.json()["status"]
        if all(statuses.get(i) in done for i in ids):
            break
        await asyncio.sleep(0.2)
    return statuses
