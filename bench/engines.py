"""The systems under test, behind one small interface the drivers use.

Each engine runs as its own process(es) on a fresh database and exposes: start one W1
workflow (two HTTP steps calling the stub with the workflow's key), the engine's process ids
(CPU and RSS are read from /proc), a crash (`kill -9` of every engine process) and restart,
and a final status count. Baton and the limit are driven over plain HTTP from Baton's .venv;
the peers live in bench/peers/ and run from bench/.venv-peers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import httpx

from bench.common import (
    BATON_BIN,
    BATON_PYTHON,
    REPO_ROOT,
    DbTarget,
    baton_env,
    free_port,
    headers,
    kill9,
    stop_process,
    wait_http,
)
from bench.minihttp import ConnectionPool

W1_WORKFLOW = "bench_w1"


class Engine(Protocol):
    async def start(self, key: str) -> None:
        """Start one W1 workflow; return when the system has accepted it."""

    def pids(self) -> list[int]: ...

    async def crash(self) -> None:
        """kill -9 every engine process."""

    async def restart(self) -> None: ...

    async def count_completed(self) -> int: ...

    async def count_running(self) -> int:
        """Workflows the system still holds as running or queued (not finished, not lost)."""

    def notes(self) -> str:
        """How this system was configured, for the report."""


class Procs:
    """Engine processes with their commands, so a crash can be followed by the same start."""

    def __init__(self) -> None:
        self.specs: list[tuple[list[str], dict[str, str] | None, Path, str | None]] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(
        self, cmd: list[str], env: dict[str, str] | None, log: Path, ready_url: str | None
    ) -> subprocess.Popen[bytes]:
        self.specs.append((cmd, env, log, ready_url))
        proc = self._launch(cmd, env, log, ready_url)
        self.procs.append(proc)
        return proc

    @staticmethod
    def _launch(
        cmd: list[str], env: dict[str, str] | None, log: Path, ready_url: str | None
    ) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            proc = subprocess.Popen(cmd, env=env, cwd=REPO_ROOT, stdout=out, stderr=out)
        if ready_url:
            wait_http(ready_url, proc, log, 90)
        return proc

    def kill_all(self) -> None:
        for proc in self.procs:
            kill9(proc)

    def relaunch_all(self) -> None:
        self.procs = [self._launch(*spec) for spec in self.specs]

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]


def w1_definition(stub: str) -> dict[str, Any]:
    def step(ref: str) -> dict[str, Any]:
        return {
            "name": ref,
            "taskReferenceName": ref,
            "type": "HTTP",
            "inputParameters": {"uri": stub + f"/{ref}?k=${{workflow.input.k}}", "method": "GET"},
        }

    return {"name": W1_WORKFLOW, "version": 1, "tasks": [step("s1"), step("s2")]}


class BatonEngine:
    def __init__(self, db: DbTarget, stub: str, logdir: Path) -> None:
        self.db, self.stub, self.logdir = db, stub, logdir
        self.procs = Procs()
        self.url = ""
        self.client: httpx.AsyncClient | None = None

    async def open(self, concurrency: int) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = baton_env(self.db.url, port, self.db.workdir / "data")
        log = self.logdir / f"baton-{self.db.kind}.log"
        if not BATON_BIN.exists():
            raise RuntimeError(f"{BATON_BIN} is missing: run `make test` or `make run` once")
        # The working tree's own `baton serve` (.venv holds an editable install of it).
        cmd = [str(BATON_BIN), "serve"]
        await asyncio.to_thread(self.procs.spawn, cmd, env, log, f"{self.url}/health")
        await self._connect(concurrency)
        assert self.client is not None
        r = await self.client.post("/api/metadata/workflow", json=w1_definition(self.stub))
        r.raise_for_status()

    async def _connect(self, concurrency: int) -> None:
        if self.client is not None:
            await self.client.aclose()
        self.hdrs = await asyncio.to_thread(headers, self.url)
        self.client = httpx.AsyncClient(base_url=self.url, headers=self.hdrs, timeout=60)
        self.pool = ConnectionPool(int(self.url.rsplit(":", 1)[1]), concurrency)
        self._concurrency = concurrency

    async def start(self, key: str) -> None:
        body = json.dumps({"k": key}).encode()
        status, data = await self.pool.request(
            "POST", f"/api/workflow/{W1_WORKFLOW}", body, self.hdrs
        )
        if status != 200:
            raise RuntimeError(f"start answered {status}: {data[:200]!r}")

    def pids(self) -> list[int]:
        return self.procs.pids()

    async def crash(self) -> None:
        self.procs.kill_all()

    async def restart(self) -> None:
        await asyncio.to_thread(self.procs.relaunch_all)
        await self._connect(self._concurrency)

    async def _count(self, status: str) -> int:
        assert self.client is not None
        r = await self.client.get(
            "/api/workflow/search",
            params={"query": f"workflowType='{W1_WORKFLOW}' AND status='{status}'", "size": 1},
        )
        r.raise_for_status()
        return int(r.json()["totalHits"])

    async def count_completed(self) -> int:
        return await self._count("COMPLETED")

    async def count_running(self) -> int:
        return await self._count("RUNNING")

    def notes(self) -> str:
        return "baton serve (1 process, uvicorn), auth on, POST /api/workflow/{name}"

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.pool.close()
        await asyncio.to_thread(self.procs.stop_all)


class LimitEngine:
    def __init__(self, db: DbTarget, stub: str, logdir: Path) -> None:
        self.db, self.stub, self.logdir = db, stub, logdir
        self.procs = Procs()
        self.url = ""
        self.client: httpx.AsyncClient | None = None

    async def open(self, concurrency: int) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        cmd = [str(BATON_PYTHON), "-m", "bench.limit", "--db-url", self.db.url]
        cmd += ["--port", str(port), "--stub", self.stub]
        log = self.logdir / f"limit-{self.db.kind}.log"
        await asyncio.to_thread(self.procs.spawn, cmd, None, log, f"{self.url}/health")
        self.client = httpx.AsyncClient(base_url=self.url, timeout=60)
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

    async def count_completed(self) -> int:
        assert self.client is not None
        r = await self.client.get("/count")
        return int(r.json()["completed"])

    async def count_running(self) -> int:
        assert self.client is not None
        r = await self.client.get("/count")
        return int(r.json()["running"])

    def notes(self) -> str:
        return "bare asyncio + httpx, 1 commit per step (3 per workflow), no engine"

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.pool.close()
        await asyncio.to_thread(self.procs.stop_all)


@contextlib.asynccontextmanager
async def open_engine(
    system: str, db: DbTarget, stub: str, logdir: Path, concurrency: int
) -> AsyncIterator[Any]:
    engine: Any
    if system == "baton":
        engine = BatonEngine(db, stub, logdir)
    elif system == "limit":
        engine = LimitEngine(db, stub, logdir)
    elif system in {"dbos", "dbos-direct"}:
        from bench.peers.dbos_w1 import DbosEngine

        engine = DbosEngine(db, stub, logdir, mode="direct" if system == "dbos-direct" else "queue")
    elif system == "temporal":
        from bench.peers.temporal_w1 import TemporalEngine

        engine = TemporalEngine(db, stub, logdir)
    else:
        raise ValueError(f"unknown system {system}")
    try:
        await engine.open(concurrency)
        yield engine
    finally:
        await engine.close()
