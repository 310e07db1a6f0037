"""Worker round-trip benchmark: N workflows of one SIMPLE task; an external worker process
batch-polls (count=10, timeout=100 ms) and completes them.

    python -m bench.worker_roundtrip --db sqlite --db postgres --n 2000

Reports tasks/s (first poll to last update), start calls/s, and the poll-to-update latency
of each task (from the poll answer that handed it out to the update answer) as percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import REPO_ROOT, baton_server, fresh_database, headers, percentile, report

TASK = "bench_step"


async def _start_workflows(url: str, n: int, concurrency: int) -> float:
    hdrs = headers(url)
    async with httpx.AsyncClient(base_url=url, headers=hdrs, timeout=60) as c:
        r = await c.post("/api/metadata/taskdefs", json=[{"name": TASK, "retryCount": 0}])
        r.raise_for_status()
        definition = {
            "name": "bench_worker_flow",
            "version": 1,
            "tasks": [{"name": TASK, "taskReferenceName": "step", "type": "SIMPLE"}],
        }
        (await c.post("/api/metadata/workflow", json=definition)).raise_for_status()
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(n):
            queue.put_nowait(i)

        async def starter() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                (await c.post("/api/workflow/bench_worker_flow", json={"i": i})).raise_for_status()

        t0 = time.perf_counter()
        await asyncio.gather(*(starter() for _ in range(concurrency)))
        return time.perf_counter() - t0


async def _worker(url: str, n: int, pollers: int, deadline_s: float) -> dict[str, Any]:
    hdrs = headers(url)
    latencies: list[float] = []
    done = 0
    first_poll: float | None = None
    end = time.monotonic() + deadline_s
    limits = httpx.Limits(max_connections=pollers * 2)
    async with httpx.AsyncClient(base_url=url, headers=hdrs, timeout=30, limits=limits) as c:

        async def loop() -> None:
            nonlocal done, first_poll
            while done < n and time.monotonic() < end:
                r = await c.get(
                    f"/api/tasks/poll/batch/{TASK}",
                    params={"count": 10, "timeout": 100, "workerid": f"bench-{os.getpid()}"},
                )
                got = time.perf_counter()
                tasks = r.json() if r.status_code == 200 else []
                if tasks and first_poll is None:
                    first_poll = got
                for task in tasks:
                    result = {
                        "workflowInstanceId": task["workflowInstanceId"],
                        "taskId": task["taskId"],
                        "status": "COMPLETED",
                        "outputData": {"ok": 1},
                    }
                    (await c.post("/api/tasks", json=result)).raise_for_status()
                    latencies.append((time.perf_counter() - got) * 1000)
                    done += 1

        await asyncio.gather(*(loop() for _ in range(pollers)))
        last = time.perf_counter()
    elapsed = last - (first_poll or last)
    return {
        "completed": done,
        "seconds": elapsed,
        "tasks_per_s": done / elapsed if elapsed else 0.0,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
    }


def run_one(
    kind: str, n: int, pollers: int, postgres_url: str, results_dir: Path
) -> dict[str, Any]:
    with (
        fresh_database(kind, postgres_url) as db_url,
        baton_server(db_url, results_dir / f"server-{kind}.log") as server,
    ):
        start_s = asyncio.run(_start_workflows(server.url, n, 16))
        # The worker is its own process, as a real worker is.
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.worker_roundtrip",
                "--worker",
                server.url,
                "--n",
                str(n),
                "--pollers",
                str(pollers),
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        stats: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        stats.update({"db": kind, "n": n, "starts_per_s": n / start_s})
        return stats


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--db", action="append", choices=["sqlite", "postgres"])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--pollers", type=int, default=4)
    p.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "BATON_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if not 1 <= args.n <= 100_000:
        p.error("--n must be between 1 and 100000")
    if args.worker:
        stats = asyncio.run(_worker(args.worker, args.n, args.pollers, deadline_s=300))
        print(json.dumps(stats))
        return 0
    results_dir = REPO_ROOT / "bench" / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    rows = [
        run_one(kind, args.n, args.pollers, args.postgres_url, results_dir)
        for kind in (args.db or ["sqlite", "postgres"])
    ]
    lines = [
        f"Worker round trips, N={args.n}, {args.pollers} pollers, batch 10, long poll 100 ms",
        "",
        "| db | tasks/s | starts/s | poll→update p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['db']} | {r['tasks_per_s']:.0f} | {r['starts_per_s']:.0f} | "
            f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} |"
        )
    table = "\n".join(lines)
    report(results_dir, "worker-roundtrip", table, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
