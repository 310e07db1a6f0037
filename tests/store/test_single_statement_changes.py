"""Postgres: a change to a workflow is written in one statement when it only reads before
that write: no lock, the write applies only if the workflow row is still the version that
was read. A change that lost a race, or would write anything else, runs again as a locked
transaction, so the outcome is the same as with the lock alone."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from app.engine.executor import Executor, Unit
from app.store import executions as store
from app.store.db import WriteNeedsTransaction
from tests.api.flows import run, simple, wf


async def started(client: httpx.AsyncClient) -> str:
    return await run(client, [simple("a")], name="single_statement")


async def waiting(client: httpx.AsyncClient) -> str:
    """A running workflow with no worker task: a WAIT task (a system timer)."""
    wait = {"name": "w", "taskReferenceName": "w", "type": "WAIT", "inputParameters": {}}
    return await run(client, [wait], name="single_statement_wait")


class _Reads:
    """Counts the unlocked reads of a workflow (store.peek_unit)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = store.peek_unit

        async def counted(conn: Any, workflow_id: str) -> Any:
            self.count += 1
            return await original(conn, workflow_id)

        monkeypatch.setattr(store, "peek_unit", counted)


async def _elsewhere(ex: Executor, workflow_id: str, sets: str) -> None:
    """Change the workflow row behind this process's back, as another process would
    (`sets`: the SET list of an UPDATE of it)."""
    async with ex.db.write() as conn:
        await conn.execute(
            sa.text(f"UPDATE workflows SET {sets} WHERE workflow_id = :id"), {"id": workflow_id}
        )


def setter(name: str) -> Any:
    async def apply(_conn: Any, unit: Unit, _now: int) -> None:
        unit.wf.variables[name] = True

    return apply


async def test_a_change_that_lost_a_race_runs_again_and_keeps_both_changes(
    ex: Executor, client: httpx.AsyncClient
) -> None:
    workflow_id = await started(client)
    read = asyncio.Event()
    go_on = asyncio.Event()
    calls = 0

    async def slow(_conn: Any, unit: Unit, _now: int) -> None:
        nonlocal calls
        calls += 1
        unit.wf.variables["slow"] = calls
        if calls == 1:  # the first run read the workflow, then another change lands
            read.set()
            await asyncio.wait_for(go_on.wait(), 10)

    async def quick(_conn: Any, unit: Unit, _now: int) -> None:
        unit.wf.variables["quick"] = True

    first = asyncio.create_task(ex.change(workflow_id, slow))
    await asyncio.wait_for(read.wait(), 10)
    await ex.change(workflow_id, quick)
    go_on.set()
    await asyncio.wait_for(first, 10)
    assert calls == 2
    assert (await wf(client, workflow_id))["variables"] == {"slow": 2, "quick": True}


async def test_a_change_with_no_race_runs_once(ex: Executor, client: httpx.AsyncClient) -> None:
    workflow_id = await started(client)
    calls = 0

    async def once(_conn: Any, unit: Unit, _now: int) -> None:
        nonlocal calls
        calls += 1
        unit.wf.variables["n"] = calls

    await ex.change(workflow_id, once)
    assert calls == 1
    assert (await wf(client, workflow_id))["variables"] == {"n": 1}


async def test_a_change_that_writes_before_its_end_runs_as_a_transaction(
    ex: Executor, client: httpx.AsyncClient
) -> None:
    workflow_id = await started(client)
    seen: list[str] = []

    async def logs_first(conn: Any, unit: Unit, now: int) -> None:
        seen.append(type(conn).__name__)
        await store.add_logs(conn, [(unit.tasks[0].taskId, "a line", now)])

    await ex.change(workflow_id, logs_first)
    assert seen == ["ReadsOnly", "AsyncConnection"]
    r = await client.get(f"/api/tasks/{(await wf(client, workflow_id))['tasks'][0]['taskId']}/log")
    assert [line["log"] for line in r.json()] == ["a line"]


async def test_a_failed_guard_writes_nothing(ex: Executor, client: httpx.AsyncClient) -> None:
    workflow_id = await started(client)
    async with ex.db.single_statement_writes() as conn:
        found = await store.peek_unit(conn, workflow_id)
        assert found is not None
        wf_record, _, tasks, version = found
    await ex.decide(workflow_id)  # the row moves on: `version` is stale now
    wf_record.variables["stale"] = True
    async with ex.db.single_statement_writes() as conn:
        conn.owner = wf_record  # type: ignore[attr-defined]
        written = await store.save_unit(
            conn,
            ex.db.ops,
            wf_record,
            new_definition=None,
            new_tasks=[],
            changed_tasks=tasks,
            removed=[],
            pushed=[("stale_queue", "stale_item", 0, 0)],
            notify=None,
            final_of=wf_record,
            guard=version,
        )
    assert written is None
    assert "stale" not in (await wf(client, workflow_id))["variables"]
    async with ex.db.read() as conn:
        assert await store.queue_sizes(conn, ["stale_queue"]) in ({}, {"stale_queue": 0})


async def test_a_write_before_the_final_statement_is_refused(ex: Executor) -> None:
    async with ex.db.single_statement_writes() as conn:
        with pytest.raises(WriteNeedsTransaction):
            await store.add_logs(conn, [("t", "x", 1)])


async def test_a_change_after_this_process_wrote_the_workflow_skips_the_read(
    ex: Executor,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workflow_id = await waiting(client)
    reads = _Reads(monkeypatch)
    await ex.change(workflow_id, setter("one"))
    await ex.change(workflow_id, setter("two"))
    assert reads.count == 0
    assert (await wf(client, workflow_id))["variables"] == {"one": True, "two": True}


async def test_a_remembered_state_that_went_stale_is_read_again(
    ex: Executor,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workflow_id = await waiting(client)
    await ex.change(workflow_id, setter("before"))
    # another process changes the row meanwhile
    other = "doc = jsonb_set(doc::jsonb, '{variables,other}', 'true')::text"
    await _elsewhere(ex, workflow_id, other)
    reads = _Reads(monkeypatch)
    await ex.change(workflow_id, setter("after"))
    assert reads.count == 1
    variables = (await wf(client, workflow_id))["variables"]
    assert variables == {"before": True, "other": True, "after": True}


async def test_a_workflow_with_a_worker_task_in_flight_is_read_each_time(
    ex: Executor,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workflow_id = await started(client)  # its SIMPLE task may be polled at any time
    reads = _Reads(monkeypatch)
    await ex.change(workflow_id, setter("one"))
    await ex.change(workflow_id, setter("two"))
    assert reads.count == 2


async def test_an_error_found_in_a_kept_state_is_checked_on_a_fresh_read(
    ex: Executor, client: httpx.AsyncClient
) -> None:
    workflow_id = await waiting(client)
    await ex.change(workflow_id, setter("kept"))  # this process keeps the state it wrote
    # another process pauses the workflow meanwhile
    paused = "status = 'PAUSED', doc = jsonb_set(doc::jsonb, '{status}', '\"PAUSED\"')::text"
    await _elsewhere(ex, workflow_id, paused)
    seen: list[str] = []

    async def resume_if_paused(_conn: Any, unit: Unit, _now: int) -> None:
        seen.append(unit.wf.status)
        if unit.wf.status != "PAUSED":
            raise RuntimeError("not paused")
        unit.wf.status = "RUNNING"

    await ex.change(workflow_id, resume_if_paused, decide=False)
    assert seen == ["RUNNING", "PAUSED"]
    assert (await wf(client, workflow_id))["status"] == "RUNNING"
