"""W2 for the peers: N workflows of one step run by a separate worker process, as Baton's W2.

DBOS: workflows enqueued on a queue by a `DBOSClient` (the external enqueuer), executed by a
worker process (the DBOS app; queue polling 10 ms). Temporal: workflows of one activity
started with the SDK client, executed by one worker process. The step calls the stub
(`/w2?k=KEY`), which marks when it ran.

  A. throughput: N workflows are enqueued with no worker running, then the worker starts;
     tasks/s = N over first to last step execution.
  B. dispatch: with the worker idle, M more are enqueued at a light, steady 10/s;
     queued→running is the step's stub hit minus the moment the enqueue call was made.

    python -m bench.peers.w2 '{"system": "dbos", "db": "sqlite", "n": 2000, ...}'
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import sys
import time
import traceback
from typing import Any

from bench.common import (
    PEERS_PYTHON,
    RESULTS_DIR,
    DbTarget,
    cpu_seconds,
    free_port,
    fresh_database,
    peak_rss_mb,
    percentile,
)
from bench.engines import Procs
from bench.stub_server import Stub

DISPATCH_M = 100
DISPATCH_RATE = 10.0  # per second: light load, far below any system's capacity
APP = "bench-w2"
QUEUE = "bench_w2"
QUEUE_POLL_S = 0.01


# -- DBOS worker process ---------------------------------------------------------------------


def dbos_worker(db_url: str, stub: str, migrate_only: bool) -> None:
    import httpx
    from dbos import DBOS, DBOSConfig

    if db_url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(db_url.removeprefix("sqlite:///"))) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
    client = httpx.Client(timeout=30)

    @DBOS.step()
    def hit(key: str) -> str:
        return client.get(f"{stub}/w2", params={"k": key}).text

    @DBOS.workflow(name="bench_w2")
    def w2(key: str) -> None:
        hit(key)

    config: DBOSConfig = {"name": APP, "system_database_url": db_url, "log_level": "WARNING"}
    DBOS(config=config)
    DBOS.launch()
    DBOS.register_queue(QUEUE, polling_interval_sec=QUEUE_POLL_S)
    if migrate_only:
        DBOS.destroy()
        return
    stop = False

    def on_term(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    deadline = time.monotonic() + 600
    while not stop and time.monotonic() < deadline:
        time.sleep(0.1)
    DBOS.destroy()


# -- the measurement -------------------------------------------------------------------------


class DbosSide:
    def __init__(self, db: DbTarget, stub: str) -> None:
        self.db, self.stub = db, stub
        self.procs = Procs()
        self.client: Any = None

    async def prepare(self) -> None:
        cmd = [*self._cmd(), "--migrate-only"]
        proc = await asyncio.create_subprocess_exec(*cmd)
        await asyncio.wait_for(proc.wait(), 120)
        from dbos import DBOSClient

        self.client = DBOSClient(system_database_url=self.db.url, application_name=APP)

    def _cmd(self) -> list[str]:
        return [str(PEERS_PYTHON), "-m", "bench.peers.w2", "dbos-worker", self.db.url, self.stub]

    async def enqueue(self, key: str) -> None:
        options = {"queue_name": QUEUE, "workflow_name": "bench_w2", "workflow_id": key}
        await self.client.enqueue_async(options, key)

    async def start_worker(self) -> None:
        log = RESULTS_DIR / f"w2-dbos-{self.db.kind}.log"
        await asyncio.to_thread(self.procs.spawn, self._cmd(), None, log, None)

    def notes(self) -> str:
        return (
            f"DBOSClient enqueue → DBOS worker process (queue polling {QUEUE_POLL_S * 1000:.0f} ms)"
        )

    async def close(self) -> None:
        if self.client is not None:
            self.client.destroy()
        await asyncio.to_thread(self.procs.stop_all)


class TemporalSide:
    def __init__(self, db: DbTarget, stub: str) -> None:
        if db.kind != "sqlite":
            raise RuntimeError("Temporal's dev server runs on SQLite only")
        self.db, self.stub = db, stub
        self.procs = Procs()
        self.client: Any = None

    async def prepare(self) -> None:
        from temporalio.client import Client

        from bench.peers.temporal_w1 import temporal_cli

        port, http_port = free_port(), free_port()
        self.address = f"127.0.0.1:{port}"
        server = [str(temporal_cli()), "server", "start-dev", "--headless", "--ip", "127.0.0.1"]
        server += ["--port", str(port), "--http-port", str(http_port), "--log-level", "error"]
        server += ["--db-filename", str(self.db.workdir / "temporal.db")]
        ready = f"http://127.0.0.1:{http_port}/api/v1/namespaces"
        log = RESULTS_DIR / "w2-temporal-server.log"
        await asyncio.to_thread(self.procs.spawn, server, None, log, ready)
        self.client = await Client.connect(self.address)

    async def enqueue(self, key: str) -> None:
        from bench.peers.temporal_defs import BenchW2

        await self.client.start_workflow(BenchW2.run, key, id=key, task_queue="bench-w2")

    async def start_worker(self) -> None:
        cmd = [str(PEERS_PYTHON), "-m", "bench.peers.w2", "temporal-worker", self.address]
        env = {**os.environ, "BENCH_STUB_URL": self.stub}
        log = RESULTS_DIR / "w2-temporal-worker.log"
        await asyncio.to_thread(self.procs.spawn, cmd, env, log, None)

    def notes(self) -> str:
        return "Temporal SDK client start → 1 worker process (one activity per workflow)"

    async def close(self) -> None:
        await asyncio.to_thread(self.procs.stop_all)


async def temporal_worker(address: str) -> None:
    from temporalio.client import Client
    from temporalio.worker import Worker

    from bench.peers.temporal_defs import BenchW2, call_stub

    client = await Client.connect(address)
    worker = Worker(client, task_queue="bench-w2", workflows=[BenchW2], activities=[call_stub])
    await worker.run()


async def _enqueue_paced(side: Any, keys: list[str], rate: float) -> dict[str, float]:
    """One enqueue every 1/rate s (open loop), each its own task so a slow call does not
    delay the next."""
    sent: dict[str, float] = {}
    began = time.monotonic()
    calls = []
    for i, key in enumerate(keys):
        await asyncio.sleep(max(0.0, began + i / rate - time.monotonic()))
        sent[key] = time.monotonic()
        calls.append(asyncio.create_task(side.enqueue(key)))
    await asyncio.gather(*calls)
    return sent


async def _enqueue_all(side: Any, keys: list[str], concurrency: int) -> dict[str, float]:
    sent: dict[str, float] = {}
    pending = iter(keys)

    async def lane() -> None:
        for key in pending:
            sent[key] = time.monotonic()
            await side.enqueue(key)

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return sent


async def _wait_hits(stub: Stub, keys: list[str], seconds: float) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done = sum(1 for k in keys if (k, "w2") in stub.hits)
        if done == len(keys):
            return done
        await asyncio.sleep(0.05)
    return sum(1 for k in keys if (k, "w2") in stub.hits)


async def measure(spec: dict[str, Any], db: DbTarget) -> dict[str, Any]:
    n = int(spec["n"])
    stub = Stub()
    await stub.start()
    side: Any = DbosSide(db, stub.url) if spec["system"] == "dbos" else TemporalSide(db, stub.url)
    try:
        await side.prepare()
        a_keys = [f"a{i}" for i in range(n)]
        t0 = time.monotonic()
        await _enqueue_all(side, a_keys, 16)
        starts_per_s = n / (time.monotonic() - t0)
        await side.start_worker()
        pids = side.procs.pids()
        cpu0, db0 = sum(cpu_seconds(p) for p in pids), db.db_cpu_seconds()
        done = await _wait_hits(stub, a_keys, float(spec.get("timeout_s", 300)))
        cpu = sum(cpu_seconds(p) for p in pids) - cpu0
        db_cpu = db.db_cpu_seconds() - db0
        firsts = [stub.hits[(k, "w2")][0] for k in a_keys if (k, "w2") in stub.hits]
        b_keys = [f"b{i}" for i in range(DISPATCH_M)]
        sent = await _enqueue_paced(side, b_keys, DISPATCH_RATE)
        await _wait_hits(stub, b_keys, 60)
        dispatch = [
            (stub.hits[(k, "w2")][0] - sent[k]) * 1000 for k in b_keys if (k, "w2") in stub.hits
        ]
        span = max(firsts) - min(firsts) if len(firsts) > 1 else 0
        return {
            "completed": done,
            "tasks_per_s": round(done / span, 1) if span else 0.0,
            "starts_per_s": round(starts_per_s, 1),
            "poll_update_p50_ms": None,
            "poll_update_p95_ms": None,
            "poll_update_p99_ms": None,
            "dispatch_p50_ms": round(percentile(dispatch, 50), 1),
            "dispatch_p99_ms": round(percentile(dispatch, 99), 1),
            "dispatch_n": len(dispatch),
            "engine_cpu_s_per_1k": round(cpu / max(done, 1) * 1000, 2),
            "db_cpu_s_per_1k": round(db_cpu / max(done, 1) * 1000, 2) if db.postgres_pid else None,
            "worker_cpu_s_per_1k": None,
            "peak_rss_mb": round(sum(peak_rss_mb(p) for p in pids), 1),
            "duplicates": stub.duplicates(),
            "loadavg_1m": round(os.getloadavg()[0], 2),
            "notes": side.notes(),
        }
    finally:
        await side.close()
        await stub.close()


def _exit(_signum: int, _frame: object) -> None:
    raise SystemExit(143)


def main() -> int:
    if sys.argv[1] == "dbos-worker":
        dbos_worker(sys.argv[2], sys.argv[3], "--migrate-only" in sys.argv)
        return 0
    if sys.argv[1] == "temporal-worker":
        asyncio.run(temporal_worker(sys.argv[2]))
        return 0
    signal.signal(signal.SIGTERM, _exit)
    spec: dict[str, Any] = json.loads(sys.argv[1])
    out: dict[str, Any] = {k: spec[k] for k in ("system", "db", "n")}
    out.update({"workload": "w2", "concurrency": 0})
    t0 = time.monotonic()
    try:
        with fresh_database(spec["db"], spec["postgres_url"], spec.get("postgres_pid")) as db:
            out.update(asyncio.run(measure(spec, db)))
        out["ok"] = True
    except Exception as exc:
        traceback.print_exc()
        out.update({"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]})
    out["wall_s"] = round(time.monotonic() - t0, 1)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
