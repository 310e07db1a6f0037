"""Shared pieces of the benchmarks: ports, percentiles, process CPU/RSS from /proc, fresh
databases, a Baton server process, the admin token, reports.

Importable from Baton's .venv and from bench/.venv-peers alike: stdlib and httpx only.
Loopback only; every wait is bounded in count and time.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"
BATON_BIN = REPO_ROOT / ".venv" / "bin" / "baton"
BATON_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
PEERS_PYTHON = REPO_ROOT / "bench" / ".venv-peers" / "bin" / "python"
ADMIN_KEY_ID = "bench-admin"
ADMIN_KEY_SECRET = "bench-admin-secret-not-for-production"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


# -- processes ------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User+system CPU of a live process (threads included); with children, also the CPU of
    the children it has reaped. 0 when the process is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # fields[0] is state (field 3 of stat): utime, stime, cutime, cstime are fields 14..17.
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _TICK


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the most resident memory the process ever had."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def child_pids(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                out += [
                    int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
                ]
    return out


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process, of its live descendants, and of the children it already reaped
    (a Postgres postmaster reaps every backend that exits)."""
    total = cpu_seconds(pid, children=True)
    for child in child_pids(pid):
        total += tree_cpu_seconds(child)
    return total


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def kill9(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def wait_http(url: str, proc: subprocess.Popen[bytes] | None, log: Path, seconds: float) -> None:
    """Until `url` answers 200; fails fast if the process dies."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}: see {log}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready in {seconds:.0f}s: see {log}")


# -- databases ------------------------------------------------------------------------------


@dataclass
class DbTarget:
    kind: str  # "sqlite" | "postgres"
    url: str  # sqlite:///file or postgresql://user@host:port/db
    workdir: Path
    postgres_pid: int | None = None  # the postmaster, when the cluster is ours

    def db_cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.postgres_pid) if self.postgres_pid else 0.0


def _psql(admin_url: str, sql: str) -> None:
    subprocess.run(
        ["psql", admin_url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
        check=True,
        capture_output=True,
        timeout=60,
    )


@contextlib.contextmanager
def fresh_database(
    kind: str, postgres_url: str, postgres_pid: int | None = None
) -> Iterator[DbTarget]:
    """A new empty database: a SQLite file in a new temp dir, or a new Postgres database on
    the server `postgres_url` points at (dropped afterwards)."""
    with tempfile.TemporaryDirectory(prefix="baton-bench-") as d:
        workdir = Path(d)
        if kind == "sqlite":
            yield DbTarget("sqlite", f"sqlite:///{workdir}/bench.db", workdir)
            return
        name = f"bench_{uuid.uuid4().hex[:10]}"
        _psql(postgres_url, f'CREATE DATABASE "{name}"')
        try:
            url = postgres_url.rsplit("/", 1)[0] + "/" + name
            yield DbTarget("postgres", url, workdir, postgres_pid)
        finally:
            _psql(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- Baton ------------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    database_url: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)


def secrets_key() -> str:
    return "bench1:" + base64.b64encode(secrets.token_bytes(32)).decode()


def baton_env(database_url: str, port: int, data_dir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "BATON_DATABASE_URL": database_url,
        "BATON_DATA_DIR": str(data_dir),
        "BATON_PORT": str(port),
        "BATON_HOST": "127.0.0.1",
        "BATON_LOG_LEVEL": "WARNING",
        "BATON_ADMIN_KEY_ID": ADMIN_KEY_ID,
        "BATON_ADMIN_KEY_SECRET": ADMIN_KEY_SECRET,
    }
    if database_url.startswith("postgres"):
        # The server refuses to start on Postgres without a keyring.
        env["BATON_SECRETS_KEY"] = secrets_key()
    return env


def spawn_baton(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`baton serve` from the working tree's .venv (an editable install of this checkout)."""
    if not BATON_BIN.exists():
        raise RuntimeError(f"{BATON_BIN} is missing: run `make test` or `make run` once")
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [str(BATON_BIN), "serve"],
            env=env,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@contextlib.contextmanager
def baton_server(
    database_url: str, log_path: Path, extra_env: dict[str, str] | None = None
) -> Iterator[Server]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="baton-bench-data-") as data_dir:
        env = {**baton_env(database_url, port, Path(data_dir)), **(extra_env or {})}
        log_path.write_bytes(b"")
        proc = spawn_baton(env, log_path)
        server = Server(f"http://127.0.0.1:{port}", proc, database_url, log_path, env)
        try:
            wait_http(f"{server.url}/health", proc, log_path, 60)
            yield server
        finally:
            stop_process(server.process)


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


def python_for(system: str) -> Path:
    """Baton and the limit run from Baton's .venv; peers from the separate bench venv."""
    return PEERS_PYTHON if system in {"dbos", "dbos-direct", "temporal"} else BATON_PYTHON


def eprint(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)
