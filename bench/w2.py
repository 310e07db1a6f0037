"""W2, worker round trips on Baton: workflows of one SIMPLE task completed by an external
worker process that batch-polls (`count=10`, long poll `timeout=100` ms), once written with
raw httpx and once with the official conductor-python SDK worker.

Two phases against one server on a fresh database:
  A. throughput: N workflows are started first, then the worker drains them. tasks/s is N
     over first poll to last update; poll→update is each task's endTime - startTime.
  B. dispatch: with the worker idle and polling, M more workflows are started at a light,
     steady 10/s; poll→dispatch is each task's startTime - scheduledTime (queued to handed
     out by a poll).
Times come from the server's task records (ms), so both workers are measured the same way.

    python -m bench.w2 '{"db": "sqlite", "worker": "raw", "n": 2000, ...}'   (one JSON line out)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    ADMIN_KEY_ID,
    ADMIN_KEY_SECRET,
    BATON_PYTHON,
    REPO_ROOT,
    RESULTS_DIR,
    baton_server,
    cpu_seconds,
    fresh_database,
    headers,
    peak_rss_mb,
    percentile,
    tree_cpu_seconds,
)

TASK = "bench_step"
WORKFLOW = "bench_w2"
POLLERS = 4
DISPATCH_M = 100
DISPATCH_RATE = 10.0  # per second: light load, far below any system's capacity


async def _setup(c: httpx.AsyncClient) -> None:
    r = await c.post(
        "/api/metadata/taskdefs",
        json=[{"name": TASK, "retryCount": 0, "responseTimeoutSeconds": 60}],
    )
    r.raise_for_status()
    definition = {
        "name": WORKFLOW,
        "version": 1,
        "tasks": [{"name": TASK, "taskReferenceName": "step", "type": "SIMPLE"}],
    }
    (await c.post("/api/metadata/workflow", json=definition)).raise_for_status()


async def _start(c: httpx.AsyncClient, n: int, concurrency: int, phase: str) -> list[str]:
    ids: list[str] = []
    pending = iter(range(n))

    async def lane() -> None:
        for i in pending:
            r = await c.post(f"/api/workflow/{WORKFLOW}", json={"i": i, "phase": phase})
            r.raise_for_status()
            ids.append(r.text.strip().strip('"'))

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return ids


async def _start_paced(c: httpx.AsyncClient, n: int, rate: float) -> list[str]:
    """One start every 1/rate s (open loop), each its own task."""

    async def one(i: int) -> str:
        r = await c.post(f"/api/workflow/{WORKFLOW}", json={"i": i, "phase": "b"})
        r.raise_for_status()
        return r.text.strip().strip('"')

    began = time.monotonic()
    calls = []
    for i in range(n):
        await asyncio.sleep(max(0.0, began + i / rate - time.monotonic()))
        calls.append(asyncio.create_task(one(i)))
    return list(await asyncio.gather(*calls))


async def _completed(c: httpx.AsyncClient) -> int:
    r = await c.get(
        "/api/workflow/search",
        params={"query": f"workflowType='{WORKFLOW}' AND status='COMPLETED'", "size": 1},
    )
    r.raise_for_status()
    return int(r.json()["totalHits"])


async def _wait_completed(c: httpx.AsyncClient, target: int, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    got = 0
    while time.monotonic() < deadline:
        got = await _completed(c)
        if got >= target:
            break
        await asyncio.sleep(0.2)
    return got


async def _tasks(c: httpx.AsyncClient, total: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for start in range(0, total, 1000):
        r = await c.get(
            "/api/tasks/search-v2",
            params={"query": f"taskType='{TASK}'", "start": start, "size": 1000},
        )
        r.raise_for_status()
        out += r.json()["results"]
    return out


def _spawn_worker(kind: str, url: str, target: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CONDUCTOR_SERVER_URL": f"{url}/api",
        "CONDUCTOR_AUTH_KEY": ADMIN_KEY_ID,
        "CONDUCTOR_AUTH_SECRET": ADMIN_KEY_SECRET,
    }
    module = "bench.w2_sdk_worker" if kind == "sdk" else "bench.w2_raw_worker"
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(BATON_PYTHON), "-m", module, url, str(target)],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=out,
            # Its own process group: the SDK's TaskHandler leaves helper processes behind.
            start_new_session=True,
        )


async def measure(spec: dict[str, Any], server_url: str, server_pid: int) -> dict[str, Any]:
    n, kind = int(spec["n"]), spec["worker"]
    timeout_s = float(spec.get("timeout_s", 300))
    hdrs = await asyncio.to_thread(headers, server_url)
    # Idle connections are dropped before uvicorn's 5 s keep-alive timeout: a request sent on a
    # connection the server is closing at that moment fails with ReadError (not retried).
    limits = httpx.Limits(max_connections=32, keepalive_expiry=2)
    async with httpx.AsyncClient(base_url=server_url, headers=hdrs, timeout=60, limits=limits) as c:
        await _setup(c)
        t0 = time.monotonic()
        await _start(c, n, 16, "a")
        starts_per_s = n / (time.monotonic() - t0)
        cpu0 = cpu_seconds(server_pid)
        log = RESULTS_DIR / f"w2-worker-{kind}-{spec['db']}.log"
        log.write_bytes(b"")
        worker = _spawn_worker(kind, server_url, n + DISPATCH_M, log)
        try:
            drained = await _wait_completed(c, n, timeout_s)
            server_cpu = cpu_seconds(server_pid) - cpu0
            worker_cpu = tree_cpu_seconds(worker.pid)
            # Phase B: the worker is idle and long-polling; start workflows at a light pace.
            b_ids = set(await _start_paced(c, DISPATCH_M, DISPATCH_RATE))
            await _wait_completed(c, n + DISPATCH_M, 60)
        finally:
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(worker.wait, 20)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
        tasks = await _tasks(c, n + DISPATCH_M)
    a = [t for t in tasks if t["workflowInstanceId"] not in b_ids and t.get("endTime")]
    b = [t for t in tasks if t["workflowInstanceId"] in b_ids and t.get("startTime")]
    span_ms = max(t["endTime"] for t in a) - min(t["startTime"] for t in a) if a else 0
    poll_update = [float(t["endTime"] - t["startTime"]) for t in a]
    dispatch = [float(t["startTime"] - t["scheduledTime"]) for t in b]
    done_a = max(len(a), 1)
    return {
        "completed": len(a),
        "tasks_per_s": round(len(a) / (span_ms / 1000), 1) if span_ms else 0.0,
        "starts_per_s": round(starts_per_s, 1),
        "poll_update_p50_ms": percentile(poll_update, 50),
        "poll_update_p95_ms": percentile(poll_update, 95),
        "poll_update_p99_ms": percentile(poll_update, 99),
        "dispatch_p50_ms": percentile(dispatch, 50),
        "dispatch_p99_ms": percentile(dispatch, 99),
        "dispatch_n": len(dispatch),
        "engine_cpu_s_per_1k": round(server_cpu / done_a * 1000, 2),
        "worker_cpu_s_per_1k": round(worker_cpu / done_a * 1000, 2),
        "peak_rss_mb": round(peak_rss_mb(server_pid), 1),
        "drained": drained,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def _exit(_signum: int, _frame: object) -> None:
    raise SystemExit(143)  # unwind: stop the engine processes and drop the database


def main() -> int:
    signal.signal(signal.SIGTERM, _exit)
    spec: dict[str, Any] = json.loads(sys.argv[1])
    out: dict[str, Any] = {
        "workload": "w2",
        "system": "baton-sdk" if spec["worker"] == "sdk" else "baton",
        "db": spec["db"],
        "n": spec["n"],
        "concurrency": 0,
    }
    t0 = time.monotonic()
    try:
        with (
            fresh_database(spec["db"], spec["postgres_url"], spec.get("postgres_pid")) as db,
            baton_server(db.url, RESULTS_DIR / f"baton-w2-{spec['db']}.log") as server,
        ):
            out.update(asyncio.run(measure(spec, server.url, server.process.pid)))
            out["notes"] = (
                "conductor-python 2.0.0 TaskHandler, thread_count 10, poll_timeout 100 ms"
                if spec["worker"] == "sdk"
                else f"raw httpx, {POLLERS} pollers, batch 10, long poll 100 ms"
            )
        out["ok"] = True
    except Exception as exc:
        traceback.print_exc()
        out.update({"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]})
    out["wall_s"] = round(time.monotonic() - t0, 1)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
