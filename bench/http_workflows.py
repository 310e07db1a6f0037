"""HTTP workflow benchmark: N workflows of two HTTP tasks against a local stub server,
driven as a closed loop of C concurrent `POST /api/workflow/execute` calls (each returns when
its workflow has finished).

    python -m bench.http_workflows --db sqlite --db postgres --n 1000 --concurrency 16

Reports completed workflows/s and start-to-completion latency percentiles, and checks the
stub saw exactly two hits per workflow.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    REPO_ROOT,
    baton_server,
    free_port,
    fresh_database,
    headers,
    percentile,
    report,
)


def _definition(stub: str) -> dict[str, Any]:
    return {
        "name": "bench_http_flow",
        "version": 1,
        "tasks": [
            {
                "name": "first",
                "taskReferenceName": "first",
                "type": "HTTP",
                "inputParameters": {
                    "uri": f"{stub}/first",
                    "method": "POST",
                    "body": {"i": "${workflow.input.i}"},
                },
            },
            {
                "name": "second",
                "taskReferenceName": "second",
                "type": "HTTP",
                "inputParameters": {
                    "uri": stub + "/second?t=${first.output.response.body.token}",
                    "method": "GET",
                },
            },
        ],
    }


async def _drive(url: str, stub: str, n: int, concurrency: int) -> dict[str, Any]:
    hdrs = headers(url)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    limits = httpx.Limits(max_connections=concurrency + 4)
    async with httpx.AsyncClient(base_url=url, headers=hdrs, timeout=120, limits=limits) as c:
        (await c.post("/api/metadata/workflow", json=_definition(stub))).raise_for_status()
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(n):
            queue.put_nowait(i)

        async def one() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                t0 = time.perf_counter()
                r = await c.post(
                    "/api/workflow/execute/bench_http_flow/1",
                    params={"waitForSeconds": 60},
                    json={"input": {"i": i}},
                )
                latencies.append((time.perf_counter() - t0) * 1000)
                status = (
                    r.json().get("status", str(r.status_code))
                    if r.status_code == 200
                    else str(r.status_code)
                )
                statuses[status] = statuses.get(status, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
        hits = (await c.get(f"{stub}/__hits")).json()["hits"]
    return {
        "workflows": n,
        "concurrency": concurrency,
        "seconds": elapsed,
        "wf_per_s": n / elapsed,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "statuses": statuses,
        "stub_hits": hits,
    }


def run_one(
    kind: str, n: int, concurrency: int, postgres_url: str, results: Path
) -> dict[str, Any]:
    port = free_port()
    stub = subprocess.Popen([sys.executable, "-m", "bench.stub_server", str(port)], cwd=REPO_ROOT)
    try:
        stub_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{stub_url}/__hits", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        with (
            fresh_database(kind, postgres_url) as db_url,
            baton_server(db_url, results / f"server-http-{kind}.log") as server,
        ):
            row = asyncio.run(_drive(server.url, stub_url, n, concurrency))
            row["db"] = kind
            return row
    finally:
        stub.terminate()
        stub.wait(timeout=10)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--db", action="append", choices=["sqlite", "postgres"])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "BATON_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    args = p.parse_args()
    if not 1 <= args.n <= 100_000 or not 1 <= args.concurrency <= 256:
        p.error("--n must be 1..100000 and --concurrency 1..256")
    results = REPO_ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    rows = [
        run_one(k, args.n, args.concurrency, args.postgres_url, results)
        for k in (args.db or ["sqlite", "postgres"])
    ]
    lines = [
        f"HTTP workflows (2 HTTP tasks each), N={args.n}, concurrency {args.concurrency}, "
        "closed loop via /api/workflow/execute",
        "",
        "| db | workflows/s | start→completion p50 ms | p99 ms | statuses | stub hits |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['db']} | {r['wf_per_s']:.0f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} "
            f"| {r['statuses']} | {r['stub_hits']} |"
        )
    table = "\n".join(lines)
    report(results, "http-workflows", table, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
