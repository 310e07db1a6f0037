"""One measurement in its own process: `python -m bench.run '<json spec>'` prints one JSON line.

The orchestrator (`python -m bench`) runs this with Baton's .venv for Baton and the limit and
with bench/.venv-peers for the peers, so no peer library ever enters Baton's environment.
Spec keys: workload (w1|w3), system, db (sqlite|postgres), postgres_url, postgres_pid, n,
concurrency, warmup, timeout_s.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, fresh_database
from bench.driver import run_w1, run_w3
from bench.engines import open_engine
from bench.stub_server import Stub


async def _measure(spec: dict[str, Any], logdir: Path) -> dict[str, Any]:
    with fresh_database(spec["db"], spec["postgres_url"], spec.get("postgres_pid")) as db:
        stub = Stub()
        await stub.start()
        try:
            async with open_engine(
                spec["system"], db, stub.url, logdir, spec["concurrency"]
            ) as engine:
                if spec["workload"] == "w1":
                    row = await run_w1(
                        engine,
                        stub,
                        db,
                        spec["n"],
                        spec["concurrency"],
                        spec.get("warmup", 0),
                        spec.get("timeout_s", 120),
                        spec.get("budget_s"),
                    )
                elif spec["workload"] == "w3":
                    row = await run_w3(
                        engine, stub, spec["n"], spec["concurrency"], spec.get("timeout_s", 300)
                    )
                else:
                    raise ValueError(f"unknown workload {spec['workload']}")
                row["notes"] = engine.notes()
                return row
        finally:
            await stub.close()


def _exit(_signum: int, _frame: object) -> None:
    raise SystemExit(143)  # unwind: stop the engine processes and drop the database


def main() -> int:
    signal.signal(signal.SIGTERM, _exit)
    spec: dict[str, Any] = json.loads(sys.argv[1])
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    out: dict[str, Any] = {k: spec[k] for k in ("workload", "system", "db", "n", "concurrency")}
    try:
        out.update(asyncio.run(_measure(spec, RESULTS_DIR)))
        out["ok"] = True
    except Exception as exc:
        traceback.print_exc()
        out.update({"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]})
    out["wall_s"] = round(time.monotonic() - t0, 1)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
