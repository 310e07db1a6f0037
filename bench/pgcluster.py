"""A throwaway PostgreSQL cluster for one benchmark run: initdb into a temp dir, serve on a
spare loopback port with default durability (fsync and synchronous_commit on) and
max_connections 200, stop and delete it afterwards.

Its own cluster keeps the measurement away from whatever else uses the machine's Postgres,
and lets the run read the CPU of every backend (the postmaster reaps them all).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.common import free_port


@dataclass
class Cluster:
    url: str  # admin URL (database postgres)
    pid: int | None  # the postmaster


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_postgres(cmd: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    bindir = _bin_dir()
    if bindir is None:
        raise RuntimeError("no initdb under /usr/lib/postgresql/*/bin")
    root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    data, log = root / "data", root / "server.log"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    try:
        subprocess.run(
            _as_postgres(
                [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        opts = f"-p {port} -c listen_addresses=127.0.0.1 -c max_connections=200 -k {root}"
        subprocess.run(
            _as_postgres(
                [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "start"]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        yield Cluster(f"postgresql://postgres@127.0.0.1:{port}/postgres", pid)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
                capture_output=True,
                timeout=120,
            )
        deadline = time.monotonic() + 10
        while (data / "postmaster.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)
