"""Postgres: a change to a workflow wakes processes waiting on it (synchronous execute,
signal/sync) through NOTIFY only while one waits: NOTIFY serialises committing transactions
on a global lock, and nearly no change has a waiter in another process. Queue wake-ups
(worker long polls) are sent as before."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from app.engine.executor import Executor, Unit
from app.engine.notify import CHANNEL
from app.store.tables import waiters
from tests.api.flows import run, simple, work


class _Heard:
    """What another process would hear on Baton's channel, in commit order."""

    def __init__(self) -> None:
        self.payloads: list[str] = []
        self.arrived = asyncio.Event()

    def __call__(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.payloads.append(payload)
        self.arrived.set()

    async def until(self, wanted: str, seconds: float = 10) -> None:
        async with asyncio.timeout(seconds):
            while not any(wanted in p for p in self.payloads):
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
async def heard(ex: Executor, database_url: str) -> Any:
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    conn = await asyncpg.connect(dsn)
    listener = _Heard()
    await conn.add_listener(CHANNEL, listener)
    try:
        yield listener
    finally:
        await conn.close()


async def _touch(ex: Executor, workflow_id: str, name: str) -> None:
    async def apply(_conn: Any, unit: Unit, _now: int) -> None:
        unit.wf.variables[name] = True

    await ex.change(workflow_id, apply)


async def test_a_change_nobody_waits_on_sends_no_wake_up_and_one_waited_on_does(
    ex: Executor, client: httpx.AsyncClient, heard: _Heard
) -> None:
    quiet = await run(client, [simple("a")], name="wake_quiet")
    watched = await run(client, [simple("a")], name="wake_watched")
    await _touch(ex, quiet, "unwatched")
    async with ex.watching(watched, 30) as key:
        assert key == f"wf:{watched}"
        await _touch(ex, watched, "watched")
        await heard.until(f"wf:{watched}")
    # Delivered in commit order: the earlier change would have been heard before it.
    assert not any(f"wf:{quiet}" in p for p in heard.payloads)


async def test_a_wait_is_registered_only_while_it_lasts(
    ex: Executor, client: httpx.AsyncClient
) -> None:
    workflow_id = await run(client, [simple("a")], name="wake_registered")

    async def count() -> int:
        async with ex.db.read() as conn:
            query = sa.select(sa.func.count()).where(waiters.c.workflow_id == workflow_id)
            return int(await conn.scalar(query.select_from(waiters)) or 0)

    async with ex.watching(workflow_id, 5):
        assert await count() == 1
    assert await count() == 0


async def test_a_wait_left_behind_by_a_dead_process_wakes_nobody_once_its_time_passed(
    ex: Executor, client: httpx.AsyncClient, heard: _Heard, clock: Any
) -> None:
    stale = await run(client, [simple("a")], name="wake_stale")
    marker = await run(client, [simple("a")], name="wake_marker")
    async with ex.db.write() as conn:  # as a process killed while waiting would leave it
        await conn.execute(
            sa.insert(waiters).values(
                workflow_id=stale, waiter_id="dead", until_ms=clock.now_ms() + 1_000
            )
        )
    clock.advance(2_000)
    await _touch(ex, stale, "after")
    async with ex.watching(marker, 5):
        await _touch(ex, marker, "marker")
        await heard.until(f"wf:{marker}")
    assert not any(f"wf:{stale}" in p for p in heard.payloads)
    async with ex.db.read() as conn:  # and the registration above removed it
        left = await conn.scalar(sa.select(sa.func.count()).select_from(waiters))
    assert left == 0


async def test_queue_wake_ups_are_sent_without_a_waiter(
    ex: Executor, client: httpx.AsyncClient, heard: _Heard
) -> None:
    await run(client, [simple("wake_queue_task")], name="wake_queue")
    await heard.until("wake_queue_task")


async def test_a_synchronous_execute_is_registered_while_it_waits(
    ex: Executor, client: httpx.AsyncClient
) -> None:
    definition = {"name": "wake_execute", "version": 1, "tasks": [simple("a")]}
    assert (await client.post("/api/metadata/workflow", json=definition)).status_code == 200
    execute = asyncio.create_task(
        client.post("/api/workflow/execute/wake_execute/1", json={}, params={"waitForSeconds": 10})
    )

    async def registered() -> list[str]:
        async with ex.db.read() as conn:
            return list(await conn.scalars(sa.select(waiters.c.workflow_id)))

    async with asyncio.timeout(10):
        while not (waiting := await registered()):
            await asyncio.sleep(0.02)
    await work(client, "w_a")
    response = await asyncio.wait_for(execute, 10)
    assert response.json()["status"] == "COMPLETED"
    assert waiting == [response.json()["workflowId"]]
    assert await registered() == []


async def test_a_queue_whose_name_looks_like_a_workflows_is_woken_without_a_waiter(
    ex: Executor, client: httpx.AsyncClient, heard: _Heard
) -> None:
    definition = {"name": "wake_domain", "version": 1, "tasks": [simple("a")]}
    assert (await client.post("/api/metadata/workflow", json=definition)).status_code == 200
    body = {"name": "wake_domain", "taskToDomain": {"w_a": "wf"}}
    assert (await client.post("/api/workflow", json=body)).status_code == 200
    await heard.until("wf:w_a")  # the worker queue of domain "wf"
