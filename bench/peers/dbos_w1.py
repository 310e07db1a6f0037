"""DBOS Transact as a W1 peer: a FastAPI app (uvicorn, one process) with one async workflow of
two `@DBOS.step` functions, each calling the stub. `POST /start?k=KEY` enqueues the workflow
on a registered queue (mode "queue", the closest to Baton's start) or starts it directly in
the background (mode "direct"); the workflow ID is the key. Its system database is the same
fresh SQLite file or Postgres database the other systems get.

Runs only from bench/.venv-peers:

    python -m bench.peers.dbos_w1 --db-url URL --port P --stub URL --mode queue
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from bench.common import PEERS_PYTHON, DbTarget, free_port
from bench.engines import Procs
from bench.minihttp import ConnectionPool

# Queue polling interval of the DBOS queue (DBOS's default is 1 s, far too slow for a closed
# loop; 10 ms is what a latency-minded user would set).
QUEUE_POLL_S = float(os.environ.get("BENCH_DBOS_QUEUE_POLL_S", "0.01"))
SLOTS = 64


def build_app(db_url: str, stub: str, mode: str) -> Any:
    from dbos import DBOS, DBOSConfig, SetWorkflowID
    from fastapi import FastAPI

    # One httpx client per slot, as Baton's HTTP runner and the limit have.
    clients: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()

    @DBOS.step()
    async def call(step: str, k: str) -> str:
        client = await clients.get()
        try:
            r = await client.get(f"{stub}/{step}", params={"k": k})
            return r.text
        finally:
            clients.put_nowait(client)

    @DBOS.workflow()
    async def w1(k: str) -> None:
        await call("s1", k)
        await call("s2", k)

    if db_url.startswith("sqlite:///"):
        # As DBOS's own test suite does: the file starts in WAL mode (persistent in the file);
        # in rollback-journal mode its pollers stall the writers.
        with contextlib.closing(sqlite3.connect(db_url.removeprefix("sqlite:///"))) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
    config: DBOSConfig = {"name": "bench-w1", "system_database_url": db_url, "log_level": "WARNING"}
    DBOS(config=config)
    queues: list[Any] = []

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        for _ in range(SLOTS):
            clients.put_nowait(httpx.AsyncClient(timeout=30))
        DBOS.launch()
        # Queues are persisted in the system database, so they are registered after launch.
        queues.append(
            await DBOS.register_queue_async("bench_w1", polling_interval_sec=QUEUE_POLL_S)
        )
        yield
        DBOS.destroy()

    app = FastAPI(lifespan=lifespan)

    @app.post("/start")
    async def start(k: str) -> dict[str, str]:
        with SetWorkflowID(k):
            if mode == "queue":
                await queues[0].enqueue_async(w1, k)
            else:
                await DBOS.start_workflow_async(w1, k)
        return {"workflowId": k}

    @app.get("/count")
    async def count() -> dict[str, int]:
        def number(statuses: list[str]) -> int:
            found = DBOS.list_workflows(status=statuses, load_input=False, load_output=False)
            return len(found)

        done = await asyncio.to_thread(number, ["SUCCESS"])
        running = await asyncio.to_thread(number, ["PENDING", "ENQUEUED"])
        return {"completed": done, "running": running}

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"healthy": True}

    return app


class DbosEngine:
    def __init__(self, db: DbTarget, stub: str, logdir: Path, mode: str) -> None:
        self.db, self.stub, self.logdir, self.mode = db, stub, logdir, mode
        self.procs = Procs()

    async def open(self, concurrency: int) -> None:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [str(PEERS_PYTHON), "-m", "bench.peers.dbos_w1", "--db-url", self.db.url]
        cmd += ["--port", str(port), "--stub", self.stub, "--mode", self.mode]
        log = self.logdir / f"dbos-{self.db.kind}.log"
        await asyncio.to_thread(self.procs.spawn, cmd, None, log, f"{url}/health")
        self.pool = ConnectionPool(port, concurrency)

    async def start(self, key: str) -> None:
        status, data = await self.pool.request("POST", f"/start?k={key}")
        if status != 200:
            raise RuntimeError(f"start answered {status}: {data[:200]!r}")

    def pids(self) -> list[int]:
        return self.procs.pids()

    async def crash(self) -> None:
        self.procs.kill_all()

    async def restart(self) -> None:
        await asyncio.to_thread(self.procs.relaunch_all)

    async def _count(self, what: str) -> int:
        status, data = await self.pool.request("GET", "/count")
        return int(json.loads(data)[what]) if status == 200 else -1

    async def count_completed(self) -> int:
        return await self._count("completed")

    async def count_running(self) -> int:
        return await self._count("running")

    def notes(self) -> str:
        from importlib.metadata import version

        how = (
            f"queue, polling {QUEUE_POLL_S * 1000:.0f} ms"
            if self.mode == "queue"
            else "direct start"
        )
        return f"DBOS {version('dbos')} in FastAPI/uvicorn (1 process), {how}"

    async def close(self) -> None:
        if hasattr(self, "pool"):
            self.pool.close()
        await asyncio.to_thread(self.procs.stop_all)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--db-url", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--stub", required=True)
    p.add_argument("--mode", choices=["queue", "direct"], default="queue")
    args = p.parse_args()
    import uvicorn

    app = build_app(args.db_url, args.stub, args.mode)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
