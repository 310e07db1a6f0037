"""Shared pieces of the benchmarks: a Baton server process on a fresh database, an admin
client, percentiles. Loopback only; every loop is bounded in count and time."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
ADMIN_KEY_ID = "bench-admin"
ADMIN_KEY_SECRET = "bench-admin-secret-not-for-production"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    database_url: str


@contextlib.contextmanager
def fresh_database(kind: str, postgres_url: str) -> Iterator[str]:
    """A new empty database: a SQLite file in a temp dir, or a new Postgres database."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="baton-bench-") as d:
            yield f"sqlite:///{d}/baton.db"
        return
    import asyncpg

    name = f"baton_bench_{uuid.uuid4().hex[:10]}"
    admin_dsn = postgres_url

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield postgres_url.rsplit("/", 1)[0] + "/" + name
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def baton_server(
    database_url: str, log_path: Path, extra_env: dict[str, str] | None = None
) -> Iterator[Server]:
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="baton-bench-data-"))
    env = {
        **os.environ,
        "BATON_DATABASE_URL": database_url,
        "BATON_DATA_DIR": str(data_dir),
        "BATON_PORT": str(port),
        "BATON_HOST": "127.0.0.1",
        "BATON_LOG_LEVEL": "WARNING",
        "BATON_ADMIN_KEY_ID": ADMIN_KEY_ID,
        "BATON_ADMIN_KEY_SECRET": ADMIN_KEY_SECRET,
        **(extra_env or {}),
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve"],
            env=env,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", proc, database_url)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: see {log_path}")
            try:
                if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError(f"server not healthy in 60s: see {log_path}")
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def token(url: str) -> str:
    r = httpx.post(
        f"{url}/api/token", json={"keyId": ADMIN_KEY_ID, "keySecret": ADMIN_KEY_SECRET}, timeout=30
    )
    if r.status_code == 404:  # auth disabled
        return ""
    r.raise_for_status()
    value: str = r.json()["token"]
    return value


def headers(url: str) -> dict[str, str]:
    t = token(url)
    return {"X-Authorization": t} if t else {}


def report(results_dir: Path, prefix: str, table: str, rows: list[dict[str, Any]]) -> None:
    """Print the table and keep it, with the raw rows, under bench/results/."""
    print(table)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (results_dir / f"{prefix}-{stamp}.md").write_text(table + "\n")
    (results_dir / f"{prefix}-{stamp}.json").write_text(json.dumps(rows, indent=2))
