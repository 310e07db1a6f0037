"""Load drivers for W1 (closed loop) and W3 (crash and restart), the same for every system.

The stub runs in the driver's event loop, so a workflow's completion (its `/s2` hit) is seen
without polling any system; all times are CLOCK_MONOTONIC, shared by every process on the
machine.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from bench.common import DbTarget, cpu_seconds, peak_rss_mb, percentile
from bench.engines import Engine
from bench.stub_server import Stub


async def final_count(engine: Engine, expected: int, wait_s: float = 15) -> int:
    """The system's own count of COMPLETED workflows; its last commit (or its visibility
    store) may trail the final stub hit a little, so wait up to `wait_s` for `expected`."""
    deadline = time.monotonic() + wait_s
    while True:
        got = await engine.count_completed()
        if got >= expected or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.25)


def _ms(values: list[float], p: float) -> float:
    return round(percentile(values, p) * 1000, 2)


async def closed_loop(
    engine: Engine,
    stub: Stub,
    keys: list[str],
    concurrency: int,
    timeout_s: float,
    budget_s: float | None = None,
) -> dict[str, Any]:
    """`concurrency` lanes; each starts a workflow and waits for its completion before the next.

    No new workflow starts after `budget_s` (slow systems on a loaded machine); the ones in
    flight still finish. `timeout_s` bounds the wait for any one completion."""
    pending = iter(keys)
    stop_starting = time.monotonic() + budget_s if budget_s else float("inf")
    skipped = 0
    start_lat: list[float] = []
    e2e: list[float] = []
    errors: list[str] = []
    timeouts = 0

    async def lane() -> None:
        nonlocal timeouts, skipped
        for key in pending:
            if time.monotonic() > stop_starting:
                skipped += 1
                continue
            t0 = time.monotonic()
            try:
                await engine.start(key)
            except Exception as exc:
                errors.append(repr(exc)[:200])
                continue
            start_lat.append(time.monotonic() - t0)
            try:
                await asyncio.wait_for(stub.done_event(key).wait(), timeout_s)
            except TimeoutError:
                timeouts += 1
                continue
            done = stub.completed_at(key)
            if done is not None:
                e2e.append(done - t0)

    began = time.monotonic()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    ends = [t for k in keys if (t := stub.completed_at(k)) is not None]
    elapsed = (max(ends) - began) if ends else float("nan")
    return {
        "completed": len(ends),
        "seconds": round(elapsed, 3),
        "wf_per_s": round(len(ends) / elapsed, 2) if ends else 0.0,
        "start_p50_ms": _ms(start_lat, 50),
        "start_p95_ms": _ms(start_lat, 95),
        "start_p99_ms": _ms(start_lat, 99),
        "e2e_p50_ms": _ms(e2e, 50),
        "e2e_p99_ms": _ms(e2e, 99),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "timeouts": timeouts,
        "not_started_budget": skipped,
    }


async def run_w1(
    engine: Engine,
    stub: Stub,
    db: DbTarget,
    n: int,
    concurrency: int,
    warmup: int,
    timeout_s: float,
    budget_s: float | None,
) -> dict[str, Any]:
    # Warm-up at the same concurrency, discarded: first requests pay imports and caches.
    if warmup:
        await closed_loop(engine, stub, [f"warm{i}" for i in range(warmup)], concurrency, 60, 30)
    pids = engine.pids()
    cpu0 = sum(cpu_seconds(p) for p in pids)
    db0 = db.db_cpu_seconds()
    driver0 = time.process_time()
    keys = [f"wf{i}" for i in range(n)]
    load0 = os.getloadavg()[0]
    row = await closed_loop(engine, stub, keys, concurrency, timeout_s, budget_s)
    cpu = sum(cpu_seconds(p) for p in pids) - cpu0
    db_cpu = db.db_cpu_seconds() - db0
    driver_cpu = time.process_time() - driver0
    done = max(row["completed"], 1)
    started = sum(1 for k in stub.hits if k[1] == "s2")
    completed_status = await final_count(engine, started)
    row.update(
        {
            "engine_cpu_s_per_1k": round(cpu / done * 1000, 2),
            "db_cpu_s_per_1k": round(db_cpu / done * 1000, 2) if db.postgres_pid else None,
            "driver_cpu_s_per_1k": round(driver_cpu / done * 1000, 2),
            "peak_rss_mb": round(sum(peak_rss_mb(p) for p in pids), 1),
            # Final status check: every workflow started (warm-up included) reads COMPLETED.
            "status_completed": completed_status,
            "status_expected": started,
            "loadavg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
            "duplicates": stub.duplicates(keys),
        }
    )
    return row


async def run_w3(
    engine: Engine, stub: Stub, n: int, concurrency: int, timeout_s: float, stall_s: float = 30
) -> dict[str, Any]:
    """Start n workflows (open loop), kill -9 the engine as soon as the last start call has
    been answered, restart it, and wait until every workflow's final step has been hit."""
    keys = [f"c{i}" for i in range(n)]
    pending = iter(keys)
    accepted: list[str] = []

    async def starter() -> None:
        for key in pending:
            await engine.start(key)
            accepted.append(key)

    await asyncio.gather(*(starter() for _ in range(concurrency)))
    done_before = sum(1 for k in keys if stub.completed_at(k) is not None)
    killed_at = time.monotonic()
    await engine.crash()
    await engine.restart()
    restarted_at = time.monotonic()
    deadline = killed_at + timeout_s
    wanted = set(keys)
    last_progress, seen = time.monotonic(), 0
    # Wait for every workflow, but give up once nothing has completed for `stall_s`: an
    # engine that re-runs in-flight work only after a long lease would otherwise hold the
    # whole run (what is left is reported as still running, not as lost).
    while time.monotonic() < deadline and time.monotonic() - last_progress < stall_s:
        finished_now = sum(1 for k in keys if stub.completed_at(k) is not None)
        if finished_now == n:
            break
        if finished_now > seen:
            seen, last_progress = finished_now, time.monotonic()
        await asyncio.sleep(0.1)
    finished = [k for k in keys if stub.completed_at(k) is not None]
    last = max((h[0] for (k, s), h in stub.hits.items() if s == "s2" and k in wanted), default=0)
    status_completed = await final_count(engine, n, 5 if len(finished) < n else 15)
    still_running = await engine.count_running()
    return {
        "n": n,
        "accepted": len(accepted),
        "completed_before_kill": done_before,
        "in_flight_at_kill": n - done_before,
        "restart_s": round(restarted_at - killed_at, 2),
        "drain_s": round(last - killed_at, 2) if finished else None,
        "waited_s": round(time.monotonic() - killed_at, 1),
        "unfinished": n - len(finished),
        "still_running": still_running,
        # Neither completed nor held as running/queued by the system: gone.
        "lost": max(0, n - len(finished) - still_running),
        "status_completed": status_completed,
        "duplicates": stub.duplicates(keys),
        "duplicate_workflows": len(
            {k for (k, _s), h in stub.hits.items() if len(h) > 1 and k in wanted}
        ),
    }
