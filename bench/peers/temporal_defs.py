"""The Temporal side of W1 and W2: one workflow calling two activities that hit the stub
(W1), and one workflow with one no-op activity (W2). Kept apart from the engine code because
the workflow sandbox re-imports this module on every run."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    import httpx

STUB = os.environ.get("BENCH_STUB_URL", "")
SLOTS = 64
_clients: asyncio.Queue[httpx.AsyncClient] | None = None


async def _client_pool() -> asyncio.Queue[httpx.AsyncClient]:
    global _clients
    if _clients is None:
        # One httpx client per slot, as Baton's HTTP runner and the limit have.
        _clients = asyncio.Queue()
        for _ in range(SLOTS):
            _clients.put_nowait(httpx.AsyncClient(timeout=30))
    return _clients


@activity.defn
async def call_stub(step: str, key: str) -> str:
    pool = await _client_pool()
    client = await pool.get()
    try:
        r = await client.get(f"{STUB}/{step}", params={"k": key})
        return r.text
    finally:
        pool.put_nowait(client)


@workflow.defn
class BenchW1:
    @workflow.run
    async def run(self, key: str) -> None:
        for step in ("s1", "s2"):
            await workflow.execute_activity(
                call_stub, args=[step, key], start_to_close_timeout=timedelta(seconds=30)
            )


@workflow.defn
class BenchW2:
    """W2: one activity per workflow; the activity's stub hit marks its execution."""

    @workflow.run
    async def run(self, key: str) -> None:
        await workflow.execute_activity(
            call_stub, args=["w2", key], start_to_close_timeout=timedelta(seconds=30)
        )
