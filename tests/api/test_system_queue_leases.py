"""System-queue items are claimed with a lease: a live runner keeps extending it, a dead one's
items come due again when it runs out (kill -9 recovery within seconds, not minutes)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from app.clock import ManualClock
from app.engine.executor import Executor
from app.engine.runner import LEASE_MS
from tests.api.flows import drain, run, wf

QUEUE = "_sys:INLINE"
INLINE = [
    {
        "name": "js",
        "taskReferenceName": "js",
        "type": "INLINE",
        "inputParameters": {"evaluatorType": "javascript", "expression": "1 + 1"},
    }
]


def executor_of(api_app: FastAPI) -> Executor:
    executor: Executor = api_app.state.services.executor
    return executor


async def test_a_leased_item_is_not_claimed_again_while_its_lease_holds(
    client: httpx.AsyncClient, api_app: FastAPI, clock: ManualClock
) -> None:
    await run(client, INLINE)
    ex = executor_of(api_app)
    first = await ex.lease_until(QUEUE, 10, clock.now_ms() + LEASE_MS)
    clock.advance(LEASE_MS - 1)
    assert len(first) == 1
    assert await ex.lease_until(QUEUE, 10, clock.now_ms() + LEASE_MS) == []


async def test_an_item_whose_runner_died_is_claimed_again_when_its_lease_runs_out(
    client: httpx.AsyncClient, api_app: FastAPI, clock: ManualClock
) -> None:
    workflow_id = await run(client, INLINE)
    ex = executor_of(api_app)
    [item] = await ex.lease_until(QUEUE, 10, clock.now_ms() + LEASE_MS)  # then "dies"
    clock.advance(LEASE_MS)
    assert await ex.lease_until(QUEUE, 10, clock.now_ms() + LEASE_MS) == [item]
    await ex.run_system_item(QUEUE, item)
    assert (await wf(client, workflow_id))["status"] == "COMPLETED"


async def test_renewing_a_lease_keeps_the_item_claimed_past_its_first_deadline(
    client: httpx.AsyncClient, api_app: FastAPI, clock: ManualClock
) -> None:
    await run(client, INLINE)
    ex = executor_of(api_app)
    held_until = clock.now_ms() + LEASE_MS
    [item] = await ex.lease_until(QUEUE, 10, held_until)
    clock.advance(LEASE_MS // 2)
    renewed = await ex.extend_leases(QUEUE, [item], held_until, clock.now_ms() + LEASE_MS)
    assert renewed == [item]
    clock.advance(LEASE_MS // 2 + 1)  # past the first lease, inside the renewed one
    assert await ex.lease_until(QUEUE, 10, clock.now_ms() + LEASE_MS) == []


async def test_renewal_leaves_alone_an_item_that_finished_meanwhile(
    client: httpx.AsyncClient, api_app: FastAPI, clock: ManualClock
) -> None:
    await run(client, INLINE)
    ex = executor_of(api_app)
    held_until = clock.now_ms() + LEASE_MS
    [item] = await ex.lease_until(QUEUE, 10, held_until)
    await ex.run_system_item(QUEUE, item)
    assert await ex.extend_leases(QUEUE, [item], held_until, held_until + LEASE_MS) == []
    assert await drain(api_app) == 0
