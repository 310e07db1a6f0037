"""The limit: what W1 costs when nothing but the work itself is done.

A bare asyncio process makes the same HTTP calls as a Baton workflow of two HTTP tasks, with
one database commit per step and nothing else: `POST /start?k=KEY` commits the workflow row
and answers; a background coroutine then calls the stub's `/s1` and `/s2`, committing each
step's result (the second commit also marks the workflow COMPLETED). No definitions, no
expressions, no queue, no recovery: it is the ceiling Baton is measured against, not a peer.

    python -m bench.limit --db-url sqlite:///tmp/x.db --port 8099 --stub http://127.0.0.1:8098

SQLite uses the pragmas Baton uses (WAL, synchronous=NORMAL) and commits on the event loop;
Postgres uses an asyncpg pool of 10, as Baton does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
from typing import Any, Protocol

import httpx

from bench.minihttp import serve

SLOTS = 64
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS wf (k TEXT PRIMARY KEY, status TEXT NOT NULL, s1 TEXT, s2 TEXT)"
)


class Store(Protocol):
    async def insert(self, key: str) -> None: ...
    async def step1(self, key: str, out: str) -> None: ...
    async def step2(self, key: str, out: str) -> None: ...
    async def completed(self) -> int: ...
    async def running(self) -> int: ...


class SqliteStore:
    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute(SCHEMA)

    async def insert(self, key: str) -> None:
        self.conn.execute("INSERT INTO wf (k, status) VALUES (?, 'RUNNING')", (key,))

    async def step1(self, key: str, out: str) -> None:
        self.conn.execute("UPDATE wf SET s1 = ? WHERE k = ?", (out, key))

    async def step2(self, key: str, out: str) -> None:
        self.conn.execute("UPDATE wf SET s2 = ?, status = 'COMPLETED' WHERE k = ?", (out, key))

    async def completed(self) -> int:
        row = self.conn.execute("SELECT count(*) FROM wf WHERE status = 'COMPLETED'").fetchone()
        return int(row[0])

    async def running(self) -> int:
        row = self.conn.execute("SELECT count(*) FROM wf WHERE status = 'RUNNING'").fetchone()
        return int(row[0])


class PostgresStore:
    def __init__(self, pool: Any) -> None:
        self.pool = pool

    @classmethod
    async def open(cls, url: str) -> PostgresStore:
        import asyncpg

        pool = await asyncpg.create_pool(url, min_size=10, max_size=10)
        await pool.execute(SCHEMA)
        return cls(pool)

    async def insert(self, key: str) -> None:
        await self.pool.execute("INSERT INTO wf (k, status) VALUES ($1, 'RUNNING')", key)

    async def step1(self, key: str, out: str) -> None:
        await self.pool.execute("UPDATE wf SET s1 = $1 WHERE k = $2", out, key)

    async def step2(self, key: str, out: str) -> None:
        await self.pool.execute(
            "UPDATE wf SET s2 = $1, status = 'COMPLETED' WHERE k = $2", out, key
        )

    async def completed(self) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM wf WHERE status = 'COMPLETED'"))

    async def running(self) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM wf WHERE status = 'RUNNING'"))


async def run(db_url: str, port: int, stub: str) -> None:
    store: Store
    if db_url.startswith("sqlite:///"):
        store = SqliteStore(db_url.removeprefix("sqlite:///"))
    else:
        store = await PostgresStore.open(db_url)
    # One client per slot, as Baton's HTTP task runner has: one httpx client shared by many
    # concurrent requests spends milliseconds per call in its connection pool.
    clients: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
    for _ in range(SLOTS):
        clients.put_nowait(httpx.AsyncClient(timeout=30))
    running: set[asyncio.Task[None]] = set()

    async def workflow(key: str) -> None:
        client = await clients.get()
        try:
            r1 = await client.get(f"{stub}/s1", params={"k": key})
            await store.step1(key, r1.text)
            r2 = await client.get(f"{stub}/s2", params={"k": key})
            await store.step2(key, r2.text)
        finally:
            clients.put_nowait(client)

    async def handle(method: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        if path == "/start":
            key = query["k"]
            await store.insert(key)
            task = asyncio.create_task(workflow(key))
            running.add(task)
            task.add_done_callback(running.discard)
            return 200, {"workflowId": key}
        if path == "/count":
            return 200, {"completed": await store.completed(), "running": await store.running()}
        if path == "/health":
            return 200, {"healthy": True}
        return 404, {"error": path}

    server = await serve(handle, port)
    async with server:
        await server.serve_forever()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--db-url", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--stub", required=True)
    args = p.parse_args()
    print(json.dumps({"port": args.port}), flush=True)
    asyncio.run(run(args.db_url, args.port, args.stub))
    return 0


if __name__ == "__main__":
    sys.exit(main())
