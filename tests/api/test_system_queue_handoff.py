"""Direct hand-off: a system task that a transaction of this process queues due now is written
leased to this process's runner and started once the transaction commits, without a claim;
when the runner's lane is full the item is queued for a claim as before, and a transaction
that does not commit gives its reserved slots back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.clock import ManualClock
from app.engine import runner as runner_module
from app.engine.executor import Executor, StartRequest
from app.engine.runner import LEASE_MS, Runner
from app.store import executions as store
from tests.api.flows import run, wf
from tests.held_endpoint import Held, held_endpoint

QUEUE = "_sys:HTTP"


@pytest.fixture
def gate() -> Iterator[tuple[Held, str]]:
    with held_endpoint(20) as held:
        yield held


def http_call(uri: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "call",
            "taskReferenceName": "call",
            "type": "HTTP",
            "inputParameters": {"http_request": {"uri": uri, "method": "GET"}},
        }
    ]


class _ClaimLog:
    """Records the items the runner's loops claim (to tell a hand-off from a claim)."""

    def __init__(self, executor: Executor) -> None:
        self.items: list[str] = []
        original = executor.claim

        async def claim(name: str, limit: int, until: int) -> tuple[list[str], int | None]:
            ids, next_due = await original(name, limit, until)
            self.items += ids
            return ids, next_due

        executor.claim = claim  # type: ignore[method-assign]


async def _until(predicate: Any, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not await predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def _call_task(client: httpx.AsyncClient, workflow_id: str) -> dict[str, Any]:
    task: dict[str, Any] = (await wf(client, workflow_id))["tasks"][0]
    return task


@contextlib.asynccontextmanager
async def _running(api_app: FastAPI) -> AsyncIterator[Runner]:
    runner: Runner = api_app.state.services.runner
    runner.start()
    try:
        yield runner
    finally:
        await runner.stop()


@pytest.fixture
async def live_runner(api_app: FastAPI) -> AsyncIterator[Runner]:
    async with _running(api_app) as runner:
        yield runner


@pytest.fixture
async def one_slot(api_app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[_ClaimLog]:
    """The app's runner, running, with one slot for HTTP tasks; the claims its loops make."""
    monkeypatch.setitem(runner_module.CONCURRENCY, QUEUE, 1)
    claims = _ClaimLog(api_app.state.services.executor)
    async with _running(api_app):
        yield claims


async def test_a_task_queued_by_this_process_runs_without_a_claim_leased_to_it(
    client: httpx.AsyncClient,
    api_app: FastAPI,
    clock: ManualClock,
    gate: tuple[Held, str],
    live_runner: Runner,
) -> None:
    state, uri = gate
    ex: Executor = api_app.state.services.executor
    claims = _ClaimLog(ex)
    workflow_id = await run(client, http_call(uri))

    async def arrived() -> bool:
        return state.arrived == 1

    await _until(arrived)
    task_id = (await _call_task(client, workflow_id))["taskId"]
    async with ex.db.read() as conn:
        due = await store.next_due(conn, QUEUE)
    assert due == clock.now_ms() + LEASE_MS  # written leased to this process
    assert await ex.lease_until(QUEUE, 10, clock.now_ms() + LEASE_MS) == []
    state.opened.set()

    async def completed() -> bool:
        return bool((await wf(client, workflow_id))["status"] == "COMPLETED")

    await _until(completed)
    assert task_id not in claims.items
    assert state.arrived == 1


async def test_a_full_lane_leaves_the_item_queued_for_a_claim(
    client: httpx.AsyncClient, gate: tuple[Held, str], one_slot: _ClaimLog
) -> None:
    state, uri = gate
    first = await run(client, http_call(uri))

    async def one_arrived() -> bool:
        return state.arrived == 1

    await _until(one_arrived)
    second = await run(client, http_call(uri))
    state.opened.set()

    async def both_completed() -> bool:
        statuses = [(await wf(client, w))["status"] for w in (first, second)]
        return statuses == ["COMPLETED", "COMPLETED"]

    await _until(both_completed)
    assert (await _call_task(client, first))["taskId"] not in one_slot.items
    assert (await _call_task(client, second))["taskId"] in one_slot.items


async def test_a_task_whose_call_is_done_gives_its_slot_to_the_next_one_it_hands_off(
    client: httpx.AsyncClient, gate: tuple[Held, str], one_slot: _ClaimLog
) -> None:
    # One slot: the second call is handed off while the first task is still writing its
    # result, so it runs without a claim only if the first gave the slot back before that.
    state, uri = gate
    state.opened.set()
    two_calls = [*http_call(uri), {**http_call(uri)[0], "taskReferenceName": "call2"}]
    workflow_id = await run(client, two_calls)

    async def completed() -> bool:
        return bool((await wf(client, workflow_id))["status"] == "COMPLETED")

    await _until(completed)
    task_ids = [t["taskId"] for t in (await wf(client, workflow_id))["tasks"]]
    assert len(task_ids) == 2 and state.arrived == 2
    assert not set(task_ids) & set(one_slot.items)


async def test_reserving_stops_at_the_lane_limit_and_a_release_gives_the_slot_back(
    api_app: FastAPI, live_runner: Runner
) -> None:
    limit = runner_module.CONCURRENCY["_sys:INLINE"]
    assert all(live_runner.reserve("_sys:INLINE") for _ in range(limit))
    assert not live_runner.reserve("_sys:INLINE")
    live_runner.release("_sys:INLINE")
    assert live_runner.reserve("_sys:INLINE")
    for _ in range(limit):
        live_runner.release("_sys:INLINE")


async def test_a_runner_that_is_not_running_takes_no_hand_off(api_app: FastAPI) -> None:
    runner: Runner = api_app.state.services.runner
    assert not runner.reserve(QUEUE)
    assert api_app.state.services.executor.local_runner is None


async def test_a_transaction_that_fails_gives_back_the_slots_it_reserved(
    client: httpx.AsyncClient,
    api_app: FastAPI,
    live_runner: Runner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ex: Executor = api_app.state.services.executor
    limit = runner_module.CONCURRENCY[QUEUE]
    definition = {"name": "handoff_fails", "version": 1, "tasks": http_call("http://127.0.0.1:9/")}
    assert (await client.post("/api/metadata/workflow", json=definition)).status_code == 200

    async def broken(*_args: Any) -> None:
        raise RuntimeError("the write fails after the hand-off was reserved")

    monkeypatch.setattr(store, "add_logs", broken)
    for _ in range(3):
        with pytest.raises(RuntimeError):
            await ex.start(StartRequest(name="handoff_fails"))
    # Every slot is free again: the lane takes a full set of reservations, no more.
    assert all(live_runner.reserve(QUEUE) for _ in range(limit))
    assert not live_runner.reserve(QUEUE)
    for _ in range(limit):
        live_runner.release(QUEUE)
