"""Firing schedules (reference 5.4-5.6 and the issue's additions), driven by the ManualClock:
the test moves time and calls `fire_due()` as the timer would, then reads what started."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from app.auth.permissions import Role
from app.clock import ManualClock
from app.scheduler.service import SchedulerService
from app.store.tables import schedules
from tests.api.flows import flow, register, wf, work
from tests.conftest import TokenFor

Json = dict[str, Any]

T0 = 1_700_000_000_000  # ManualClock's start, 2023-11-14T22:13:20Z
MINUTE = 60_000
SLOT1 = 1_700_000_040_000  # the first whole minute after T0
SLOT2 = SLOT1 + MINUTE
SLOT3 = SLOT2 + MINUTE


@pytest.fixture
def scheduler(api_app: FastAPI) -> SchedulerService:
    service: SchedulerService = api_app.state.services.scheduler
    return service


@pytest.fixture(autouse=True)
async def flow_registered(client: httpx.AsyncClient) -> None:
    await register(client, flow(refs=("a",)))


def schedule(name: str = "every_minute", cron: str = "0 * * * * *", **extra: Any) -> Json:
    return {
        "name": name,
        "cronExpression": cron,
        "startWorkflowRequest": {"name": "flow", "version": 1, "input": {"x": 1}},
        **extra,
    }


async def save(client: httpx.AsyncClient, body: Json) -> Json:
    response = await client.post("/api/scheduler/schedules", json=body)
    assert response.status_code == 200, response.text
    saved: Json = response.json()
    return saved


async def executions(client: httpx.AsyncClient, query: str = "*", **params: Any) -> list[Json]:
    response = await client.get(
        "/api/scheduler/search/executions",
        params={"query": query, "sort": "scheduledTime:ASC|scheduleName", **params},
    )
    assert response.status_code == 200, response.text
    results: list[Json] = response.json()["results"]
    return results


async def at(clock: ManualClock, when: int, scheduler: SchedulerService) -> int:
    """Move the clock to `when` and let the scheduler fire what is due."""
    clock.advance(when - clock.now_ms())
    return await scheduler.fire_due()


async def schedule_of(client: httpx.AsyncClient, name: str = "every_minute") -> Json:
    found: Json = (await client.get(f"/api/scheduler/schedules/{name}")).json()
    return found


# -- one slot, one workflow --------------------------------------------------------------


async def test_nothing_fires_before_the_slot(
    client: httpx.AsyncClient, clock: ManualClock, scheduler: SchedulerService
) -> None:
    await save(client, schedule())
    assert await at(clock, SLOT1 - 1, scheduler) == 0
    assert await executions(client) == []


async def test_a_due_slot_starts_the_workflow_with_the_injected_inputs(
    client: httpx.AsyncClient, clock: ManualClock, scheduler: SchedulerService
) -> None:
    await save(client, schedule())
    assert await at(clock, SLOT1 + 7, scheduler) == 1
    [record] = await executions(client)
    started = await wf(client, record["workflowId"])
    assert started["input"] == {
        "x": 1,
        "_startedByScheduler": "every_minute",
        "_scheduledTime": SLOT1,
        "_executedTime": SLOT1 + 7,
        "_executionId": record["executionId"],
        "_schedulerCron": "0 * * * * * UTC",
    }
    creator = (await client.get("/api/token/userInfo")).json()["id"]
    assert started["createdBy"] == creator  # the schedule's creator


async def test_a_schedule_runs_as_whoever_saved_it_last(
    client: httpx.AsyncClient,
    clock: ManualClock,
    scheduler: SchedulerService,
    token_for: TokenFor,
) -> None:
    """Editing someone else's schedule does not borrow their access (their secrets)."""
    await save(client, schedule())
    manager = await token_for(Role.WORKFLOW_MANAGER)
    headers = {"X-Authorization": manager}
    r = await client.post("/api/scheduler/schedules", json=schedule(), headers=headers)
    assert r.status_code == 200, r.text
    manager_id = (await client.get("/api/token/userInfo", headers=headers)).json()["id"]
    assert await at(clock, SLOT1 + 7, scheduler) == 1
    [record] = await executions(client)
    assert (await wf(client, record["workflowId"]))["createdBy"] == manager_id


async def test_the_execution_record_has_the_orkes_model(
    client: httpx.AsyncClient, clock: ManualClock, scheduler: SchedulerService
) -> None:
    await save(client, schedule())
    await at(clock, SLOT1 + 7, scheduler)
    [record] = await executions(client)
    assert set(record) == {
        "executionId",
        "scheduleName",
        "scheduledTime",
        "executionTime",
        "workflowName",
        "workflowId",
        "startWorkflowRequest",
        "state",
        "zoneId",
        "orgId",
    }
    assert (record["state"], record["scheduleName"], record["workflowName"]) == (
        "EXECUTED",
        "every_minute",
        "flow",
    )
    assert (record["scheduledTime"], record["executionTime"]) == (SLOT1, SLOT1 + 7)
    assert (record["zoneId"], record["orgId"]) == ("UTC", "0000")
    assert record["startWorkflowRequest"]["input"]["_executionId"] == record["executionId"]


async def test_after_firing_the_schedule_shows_the_next_run_and_last_run(
    client: httpx.AsyncClient, clock: ManualClock, scheduler: SchedulerService
) -> None:
    await save(client, schedule())
    await at(clock, SLOT1 + 7, scheduler)
    shown = await schedule_of(client)
    assert (shown["nextRunTime"], shown["lastRunTime"], shown["lastRunStatus"]) == (
        SLOT2,
        SLOT1 + 7,
        "RUNNING",
    )


async def test_firing_again_in_the_same_slot_starts_nothing_more(
    client: httpx.AsyncClient, clock: ManualClock, scheduler: SchedulerService
) -> None:
    await save(client, schedule())
    await at(clock, SLOT1, scheduler)
    assert await scheduler.fire_due() == 0
    assert len(await executions(client)) == 1


async def test_a_slot_already_taken_is_not_started_twice_even_when_due_again(
    client: httpx.AsyncClient,
    clock: ManualClock,
    scheduler: SchedulerService,
    api_app: FastAPI,
) -> None:
    # As another process with a stale view (or a skewed clock) would see it: the same slot
    # due again. The unique (schedule, slot) record refuses it; the schedule moves on.
    await save(client, schedule())
    await at(clock, SLOT1, scheduler)
    db = api_app.state.services.db
    async with db.write() as conn:
        await conn.execute(sa.update(schedules).values(next_run_time=SLOT1))
    assert await scheduler.fire_due() == 0
    assert len(await executions(client)) == 1
    assert (await schedule_of(client))["nextRunTime"] == SLOT2


async def test_two_schedulers_on_one_database_start_one_workflow_per_slot(
    client: httpx.AsyncClient,
    clock: ManualClock,
    scheduler: SchedulerService,
    api_app: FastAPI,
) -> None:
    services = api_app.state.services
    other = SchedulerService(services.db, clock, services.executor)
    for n in range(5):
        await save(client, schedule(f"s{n}"))
    clock.advance(SLOT1 - T0)
    await asyncio.gather(scheduler.fire_due(), other.fire_due())
    records = await executions(client)
    assert sorted(r["scheduleName"] for r in records) == [f"s{n}" for n in range(5)]
    search = await client.get("/api/workflow/search", params={"query": "workflowType='flow'"})
    assert search.json()["totalHits"] == 5


# -- downtime, catch-up, pause ------------------------------------------------------------


async def test_after_downtime_the_overdue_slot_fires_once_late(
    client: httpx.AsyncClient, clock: ManualClock, scheduler: SchedulerService
) -> None:
    await save(client, schedule())
    assert await at(clock, SLOT1 + 4 * MINUTE + 5, scheduler) == 1
    [record] = await executions(client)
    assert (record["scheduledTime"], record["executionTime"]) == (SLOT1, SLOT1 + 4 * MINUTE + 5)
    assert (await schedule_of(client))["nextRunTime"] == SLOT1 + 5 * MINUTE


async def test_catch_up_replays_every_missed_slot(
    client: httpx.AsyncClient, clock: ManualClock, scheduler: SchedulerService
) -> None:
    await save(client, schedule(runCatchupScheduleInstances=True))
    assert await at(clock, SLOT1 + 4 * MINUTE + 5, scheduler) == 5
    slots = [r["scheduledTime"] for r in await executions(client)]
    assert slots == [SLOT1 + n * MINUTE for n in range(5)]


async def test_resume_never_replays_slots_missed_while_paused(
    client: httpx.AsyncClient, clock: ManualClock, scheduler: SchedulerService
) -> None:
    await save(client, schedule(runCatchupScheduleInstances=True))
    await client.put("/api/scheduler/schedules/every_minute/pause")
    assert await at(clock, SLOT3 + 1, scheduler) == 0
    await client.put("/api/scheduler/schedules/every_minute/resume")
    assert await scheduler.fire_due() == 0
    assert await at(clock, SLOT3 + MINUTE, scheduler) == 1
    assert [r["scheduledTime"] for r in await executions(client)] == [SLOT3 + MINUTE]


async def test_a_deleted_schedule_fires_no_more(
    client: httpx.AsyncClient, clock: ManualClock, scheduler: SchedulerService
) -> None:
    await save(client, schedule())
    await client.delete("/api/scheduler/schedules/every_minute")
    assert await at(clock, SLOT2, scheduler) == 0


# -- bounds ------------------------------------------------------------------------------


async def test_a_slot_exactly_at_the_start_time_fires_and_none_before(
    client: httpx.AsyncClient, clock: ManualClock, scheduler: SchedulerService
) -> None:
    saved = await save(client, schedule(scheduleStartTime=SLOT2))
    assert saved["nextRunTime"] == SLOT2
    assert await at(clock, SLOT1, scheduler) == 0
    assert await at(clock, SLOT2, scheduler) == 1


async def test_past_the_end_time_the_schedule_stays_but_stops(
    client: httpx.AsyncClient, clock: ManualClock, scheduler: SchedulerService
) -> None:
    await save(client, schedule(scheduleEndTime=SLOT2))
    assert await at(clock, SLOT1, scheduler) == 1
    assert await at(clock, SLOT2, scheduler) == 1
    assert await at(clock, SLOT3, scheduler) == 0
    shown = await schedule_of(client)
    assert (shown["name"], shown["nextRunTime"]) == ("every_minute", None)


# -- failures ----------------------------------------------------------------------------


async def test_a_start_that_fails_is_recorded_failed_and_the_schedule_goes_on(
    client: httpx.AsyncClient, clock: ManualClock, scheduler: SchedulerService
) -> None:
    body = schedule()
    body["startWorkflowRequest"]["name"] = "no_such_flow"
    await save(client, body)
    assert await at(clock, SLOT1, scheduler) == 1
    [record] = await executions(client)
    assert (record["state"], record["workflowId"]) == ("FAILED", None)
    assert record["reason"] == "No such workflow found by name: no_such_flow, version: 1"
    assert "NotFound" in record["stackTrace"]
    shown = await schedule_of(client)
    assert (shown["lastRunStatus"], shown["nextRunTime"]) == ("FAILED", SLOT2)


async def test_an_idempotency_conflict_fails_the_later_slot(
    client: httpx.AsyncClient, clock: ManualClock, scheduler: SchedulerService
) -> None:
    body = schedule()
    body["startWorkflowRequest"].update(idempotencyKey="once", idempotencyStrategy="FAIL")
    await save(client, body)
    await at(clock, SLOT1, scheduler)
    await at(clock, SLOT2, scheduler)
    assert [r["state"] for r in await executions(client)] == ["EXECUTED", "FAILED"]


# -- overlap policies -------------------------------------------------------------------


async def test_allow_starts_a_slot_while_the_previous_run_still_runs(
    client: httpx.AsyncClient, clock: ManualClock, scheduler: SchedulerService
) -> None:
    await save(client, schedule())
    await at(clock, SLOT1, scheduler)
    assert await at(clock, SLOT2, scheduler) == 1
    assert len(await executions(client)) == 2


async def test_skip_passes_over_a_slot_while_the_previous_run_still_runs(
    client: httpx.AsyncClient, clock: ManualClock, scheduler: SchedulerService
) -> None:
    await save(client, schedule(overlapPolicy="SKIP"))
    await at(clock, SLOT1, scheduler)
    await at(clock, SLOT2, scheduler)
    assert [r["scheduledTime"] for r in await executions(client)] == [SLOT1]
    await work(client, "task_a")  # the first run completes
    await at(clock, SLOT3, scheduler)
    assert [r["scheduledTime"] for r in await executions(client)] == [SLOT1, SLOT3]


async def test_buffer_one_holds_one_slot_until_the_previous_run_ends(
    client: httpx.AsyncClient, clock: ManualClock, scheduler: SchedulerService
) -> None:
    await save(client, schedule(overlapPolicy="BUFFER_ONE"))
    await at(clock, SLOT1, scheduler)
    await at(clock, SLOT2, scheduler)  # held
    await at(clock, SLOT3, scheduler)  # one is held already: skipped
    assert len(await executions(client)) == 1
    await work(client, "task_a")
    clock.advance(500)
    assert await scheduler.fire_due() == 1
    [_, buffered] = await executions(client)
    assert (buffered["scheduledTime"], buffered["executionTime"]) == (SLOT2, SLOT3 + 500)


# -- run now, several crons, zones ------------------------------------------------------


async def test_run_now_starts_at_once_even_when_paused(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await save(client, schedule(paused=True))
    response = await client.post("/api/scheduler/schedules/every_minute/run")
    assert response.status_code == 200, response.text
    record = response.json()
    assert (record["state"], record["scheduledTime"]) == ("EXECUTED", T0)
    started = await wf(client, record["workflowId"])
    assert started["input"]["_startedByScheduler"] == "every_minute"
    assert (await schedule_of(client))["lastRunTime"] == T0


async def test_run_now_of_a_missing_workflow_answers_its_error_and_records_it(
    client: httpx.AsyncClient,
) -> None:
    body = schedule()
    body["startWorkflowRequest"]["name"] = "no_such_flow"
    await save(client, body)
    response = await client.post("/api/scheduler/schedules/every_minute/run")
    assert response.status_code == 404
    assert [r["state"] for r in await executions(client)] == ["FAILED"]


async def test_run_now_of_a_missing_schedule_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/scheduler/schedules/nope/run")
    assert response.status_code == 404


async def test_with_several_crons_the_earliest_slot_fires_and_names_its_cron(
    client: httpx.AsyncClient, clock: ManualClock, scheduler: SchedulerService
) -> None:
    crons = [
        {"cronExpression": "0 0 * * * *", "zoneId": "UTC"},
        {"cronExpression": "30 * * * * *", "zoneId": "Asia/Dubai"},
    ]
    saved = await save(client, schedule(cronExpression=None, cronSchedules=crons))
    assert saved["nextRunTime"] == T0 + 10_000
    await at(clock, T0 + 10_000, scheduler)
    [record] = await executions(client)
    assert record["startWorkflowRequest"]["input"]["_schedulerCron"] == "30 * * * * * Asia/Dubai"


async def test_a_schedule_fires_at_local_time_in_its_zone(
    client: httpx.AsyncClient, clock: ManualClock, scheduler: SchedulerService
) -> None:
    saved = await save(client, schedule(cron="0 0 17 * * *", zoneId="America/Chicago"))
    assert saved["nextRunTime"] == 1_700_002_800_000  # 17:00 CST is 23:00 UTC


# -- execution search grammar -----------------------------------------------------------


@pytest.mark.parametrize("query", ["*", ""])
async def test_star_or_empty_query_finds_every_record(
    client: httpx.AsyncClient, clock: ManualClock, scheduler: SchedulerService, query: str
) -> None:
    await save(client, schedule("a"))
    await save(client, schedule("b"))
    await at(clock, SLOT1, scheduler)
    assert len(await executions(client, query)) == 2


async def test_query_clauses_filter_the_records(
    client: httpx.AsyncClient, clock: ManualClock, scheduler: SchedulerService
) -> None:
    await save(client, schedule("a"))
    await save(client, schedule("c", cron="0 15 22 * * *"))  # SLOT2 only
    await at(clock, SLOT1, scheduler)
    await at(clock, SLOT2, scheduler)
    every = await executions(client)
    assert [(r["scheduleName"], r["scheduledTime"]) for r in every] == [
        ("a", SLOT1),
        ("a", SLOT2),
        ("c", SLOT2),
    ]

    async def names(query: str) -> list[tuple[str, int]]:
        return [(r["scheduleName"], r["scheduledTime"]) for r in await executions(client, query)]

    assert await names("scheduleName IN (c)") == [("c", SLOT2)]
    assert await names("c") == [("c", SLOT2)]  # an unknown clause is a schedule name
    assert await names(f"scheduledTime>{SLOT1} AND scheduleName IN (a,c)") == [
        ("a", SLOT2),
        ("c", SLOT2),
    ]
    assert await names(f"scheduledTime<{SLOT2}") == [("a", SLOT1)]
    assert await names("state IN (FAILED)") == []
    assert len(await names("state IN (EXECUTED) AND workflowName=flow")) == 3
    assert await names(f"executionId={every[0]['executionId']}") == [("a", SLOT1)]


async def test_execution_search_sorts_and_pages(
    client: httpx.AsyncClient, clock: ManualClock, scheduler: SchedulerService
) -> None:
    await save(client, schedule("a"))
    for slot in (SLOT1, SLOT2, SLOT3):
        await at(clock, slot, scheduler)
    response = await client.get(
        "/api/scheduler/search/executions",
        params={"query": "*", "sort": "scheduledTime:DESC", "start": 1, "size": 1},
    )
    body = response.json()
    assert body["totalHits"] == 3
    assert [r["scheduledTime"] for r in body["results"]] == [SLOT2]


async def test_a_bad_time_clause_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/scheduler/search/executions", params={"query": "scheduledTime>yesterday"}
    )
    assert response.status_code == 400


# -- retention and metrics --------------------------------------------------------------


async def test_retention_keeps_the_newest_records_per_schedule(
    client: httpx.AsyncClient, clock: ManualClock, scheduler: SchedulerService
) -> None:
    await save(client, schedule())
    for slot in (SLOT1, SLOT2, SLOT3):
        await at(clock, slot, scheduler)
    scheduler.retention_per_schedule = 2
    assert await scheduler.prune() == 1
    assert [r["scheduledTime"] for r in await executions(client)] == [SLOT2, SLOT3]


async def test_retention_drops_records_older_than_the_days_kept(
    client: httpx.AsyncClient, clock: ManualClock, scheduler: SchedulerService
) -> None:
    await save(client, schedule())
    await at(clock, SLOT1, scheduler)
    scheduler.retention_days = 1
    clock.advance(86_400_000)
    assert await scheduler.prune() == 0
    clock.advance(1)
    assert await scheduler.prune() == 1


async def test_slots_are_counted_by_outcome_on_metrics(
    client: httpx.AsyncClient, clock: ManualClock, scheduler: SchedulerService
) -> None:
    await save(client, schedule(overlapPolicy="SKIP"))
    await at(clock, SLOT1 + 3 * MINUTE + 5, scheduler)  # fires late; 3 slots passed over
    await at(clock, SLOT1 + 4 * MINUTE, scheduler)  # the first run still runs: skipped
    text = (await client.get("/metrics")).text
    for outcome, count in (("fired", 1), ("missed", 3), ("skipped", 1)):
        line = f'baton_scheduler_slots_total{{outcome="{outcome}",schedule="every_minute"}}'
        assert f"{line} {count}.0" in text, outcome
