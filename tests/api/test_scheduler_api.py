"""/api/scheduler: schedules as Orkes' SchedulerResource defines them (reference 5.1, 5.2):
saving, reading, listing, pausing, previews, search, tags and the bulk and admin calls.
Firing is in test_scheduler_firing.py."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from app.auth.permissions import Permission, Requirement, Role
from app.clock import ManualClock
from app.scheduler.service import SchedulerService
from tests.api.flows import flow, register
from tests.conftest import TokenFor

Json = dict[str, Any]

# ManualClock starts at 2023-11-14T22:13:20Z; these are the next minute slots after it.
T0 = 1_700_000_000_000
SLOT1 = 1_700_000_040_000
SLOT2 = SLOT1 + 60_000

ORKES_FIELDS = {
    "name",
    "description",
    "cronExpression",
    "zoneId",
    "paused",
    "pausedReason",
    "runCatchupScheduleInstances",
    "scheduleStartTime",
    "scheduleEndTime",
    "startWorkflowRequest",
    "createTime",
    "updatedTime",
    "createdBy",
    "updatedBy",
    "tags",
    "orgId",
    "queueMsgId",
    "nextRunTime",
    "cronSchedules",
}
BATON_FIELDS = {"overlapPolicy", "lastRunTime", "lastRunStatus"}


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


async def get(client: httpx.AsyncClient, name: str) -> Json:
    response = await client.get(f"/api/scheduler/schedules/{name}")
    assert response.status_code == 200, response.text
    found: Json = response.json()
    return found


@pytest.fixture
def scheduler(api_app: FastAPI) -> SchedulerService:
    service: SchedulerService = api_app.state.services.scheduler
    return service


async def caller_id(client: httpx.AsyncClient, token: str | None = None) -> str:
    """The application id a token stands for: schedules record who saved them by id."""
    headers = {"X-Authorization": token} if token else None
    info = await client.get("/api/token/userInfo", headers=headers)
    assert info.status_code == 200, info.text
    found: str = info.json()["id"]
    return found


# -- save, get, list, delete ------------------------------------------------------------


async def test_save_returns_the_schedule_in_orkes_shape_with_its_next_run(
    client: httpx.AsyncClient,
) -> None:
    saved = await save(client, schedule(description="hourly token"))
    admin = await caller_id(client)
    assert set(saved) == ORKES_FIELDS | BATON_FIELDS
    assert saved["name"] == "every_minute"
    assert (saved["zoneId"], saved["orgId"], saved["queueMsgId"]) == ("UTC", "0000", saved["name"])
    assert (saved["createdBy"], saved["updatedBy"]) == (admin, admin)
    assert (saved["createTime"], saved["updatedTime"]) == (T0, T0)
    assert saved["nextRunTime"] == SLOT1
    assert (saved["paused"], saved["pausedReason"], saved["overlapPolicy"]) == (
        False,
        None,
        "ALLOW",
    )
    assert saved["startWorkflowRequest"] == {
        "name": "flow",
        "version": 1,
        "input": {"x": 1},
        "taskToDomain": {},
        "priority": 0,
    }


async def test_get_returns_what_save_returned(client: httpx.AsyncClient) -> None:
    saved = await save(client, schedule())
    assert await get(client, "every_minute") == saved


async def test_get_of_a_missing_schedule_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/scheduler/schedules/nope")
    assert response.status_code == 404
    assert response.json()["message"] == "Schedule 'nope' not found"


async def test_empty_version_and_priority_from_orkes_docs_are_accepted(
    client: httpx.AsyncClient,
) -> None:
    body = schedule()
    body["startWorkflowRequest"].update(version="", priority="")
    saved = await save(client, body)
    assert "version" not in saved["startWorkflowRequest"]  # latest version runs
    assert saved["startWorkflowRequest"]["priority"] == 0


async def test_saving_again_updates_but_keeps_creator_and_create_time(
    client: httpx.AsyncClient, clock: ManualClock, token_for: TokenFor
) -> None:
    await save(client, schedule())
    clock.advance(5_000)
    manager = await token_for(Role.WORKFLOW_MANAGER)
    response = await client.post(
        "/api/scheduler/schedules",
        json=schedule(cron="30 * * * * *", createdBy="someone-else"),
        headers={"X-Authorization": manager},
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert (updated["createTime"], updated["createdBy"]) == (T0, await caller_id(client))
    assert updated["updatedTime"] == T0 + 5_000
    assert updated["updatedBy"] == await caller_id(client, manager)
    assert (updated["cronExpression"], updated["nextRunTime"]) == ("30 * * * * *", T0 + 10_000)


async def test_list_returns_every_schedule_or_those_of_one_workflow(
    client: httpx.AsyncClient,
) -> None:
    await save(client, schedule("a"))
    other = schedule("b")
    other["startWorkflowRequest"]["name"] = "other_flow"
    await save(client, other)
    everything = (await client.get("/api/scheduler/schedules")).json()
    assert [s["name"] for s in everything] == ["a", "b"]
    only = (
        await client.get("/api/scheduler/schedules", params={"workflowName": "other_flow"})
    ).json()
    assert [s["name"] for s in only] == ["b"]


async def test_delete_removes_the_schedule(client: httpx.AsyncClient) -> None:
    await save(client, schedule())
    assert (await client.delete("/api/scheduler/schedules/every_minute")).status_code == 200
    assert (await client.get("/api/scheduler/schedules/every_minute")).status_code == 404


async def test_delete_of_a_missing_schedule_is_a_silent_200_as_in_oss(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.delete("/api/scheduler/schedules/nope")).status_code == 200


# -- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize("cron", ["0 * * * *", "61 * * * * *"])
async def test_an_invalid_cron_is_a_400_mentioning_cron_and_nothing_is_saved(
    client: httpx.AsyncClient, cron: str
) -> None:
    response = await client.post("/api/scheduler/schedules", json=schedule(cron=cron))
    assert response.status_code == 400
    assert "cron" in response.json()["message"].lower()
    assert (await client.get("/api/scheduler/schedules")).json() == []


async def test_an_unknown_zone_is_a_400_mentioning_cron(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/scheduler/schedules", json=schedule(zoneId="Mars/Olympus"))
    assert response.status_code == 400
    message = response.json()["message"]
    assert "cron" in message.lower() and "Mars/Olympus" in message


async def test_an_invalid_cron_in_cron_schedules_is_a_400_too(client: httpx.AsyncClient) -> None:
    body = schedule(cronSchedules=[{"cronExpression": "0 0 * * * *"}, {"cronExpression": "x"}])
    response = await client.post("/api/scheduler/schedules", json=body)
    assert response.status_code == 400
    assert "cron" in response.json()["message"].lower()


async def test_a_schedule_without_workflow_name_is_a_400_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    body = schedule()
    del body["startWorkflowRequest"]["name"]
    response = await client.post("/api/scheduler/schedules", json=body)
    assert response.status_code == 400
    assert [e["path"] for e in response.json()["validationErrors"]] == ["startWorkflowRequest.name"]


@pytest.mark.parametrize("name", ["", "a b/c,d"])
async def test_a_bad_schedule_name_is_a_400(client: httpx.AsyncClient, name: str) -> None:
    response = await client.post("/api/scheduler/schedules", json=schedule(name=name))
    assert response.status_code == 400
    assert response.json()["validationErrors"][0]["path"] == "name"


async def test_an_end_before_the_start_is_a_400(client: httpx.AsyncClient) -> None:
    body = schedule(scheduleStartTime=SLOT2, scheduleEndTime=SLOT1)
    response = await client.post("/api/scheduler/schedules", json=body)
    assert response.status_code == 400
    assert response.json()["validationErrors"][0]["path"] == "scheduleEndTime"


async def test_an_unknown_overlap_policy_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/scheduler/schedules", json=schedule(overlapPolicy="QUEUE"))
    assert response.status_code == 400
    assert response.json()["validationErrors"][0]["path"] == "overlapPolicy"


async def test_secrets_in_a_schedules_input_are_refused(client: httpx.AsyncClient) -> None:
    body = schedule()
    body["startWorkflowRequest"]["input"] = {"_secrets": {"token": "abc"}}
    response = await client.post("/api/scheduler/schedules", json=body)
    assert response.status_code == 400
    assert "${workflow.secrets.NAME}" in response.json()["validationErrors"][0]["message"]


# -- pause and resume -------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["GET", "PUT"])
async def test_pause_takes_get_or_put_with_a_reason(client: httpx.AsyncClient, verb: str) -> None:
    await save(client, schedule())
    response = await client.request(
        verb, "/api/scheduler/schedules/every_minute/pause", params={"reason": "maintenance"}
    )
    assert response.status_code == 200
    paused = await get(client, "every_minute")
    assert (paused["paused"], paused["pausedReason"], paused["nextRunTime"]) == (
        True,
        "maintenance",
        None,
    )


async def test_pausing_a_paused_schedule_is_200(client: httpx.AsyncClient) -> None:
    await save(client, schedule(paused=True))
    response = await client.put("/api/scheduler/schedules/every_minute/pause")
    assert response.status_code == 200


async def test_pausing_a_missing_schedule_is_404(client: httpx.AsyncClient) -> None:
    response = await client.put("/api/scheduler/schedules/nope/pause")
    assert response.status_code == 404
    assert response.json()["message"] == "Schedule 'nope' not found"


@pytest.mark.parametrize("verb", ["GET", "PUT"])
async def test_resume_takes_get_or_put_and_clears_the_reason(
    client: httpx.AsyncClient, clock: ManualClock, verb: str
) -> None:
    await save(client, schedule())
    await client.put("/api/scheduler/schedules/every_minute/pause", params={"reason": "r"})
    clock.advance(60_000)
    response = await client.request(verb, "/api/scheduler/schedules/every_minute/resume")
    assert response.status_code == 200
    resumed = await get(client, "every_minute")
    assert (resumed["paused"], resumed["pausedReason"], resumed["nextRunTime"]) == (
        False,
        None,
        SLOT2,
    )


async def test_resuming_a_schedule_that_is_not_paused_is_404(client: httpx.AsyncClient) -> None:
    await save(client, schedule())
    response = await client.put("/api/scheduler/schedules/every_minute/resume")
    assert response.status_code == 404
    assert response.json()["message"] == "Schedule 'every_minute' not found"


async def test_saving_with_paused_true_stores_a_paused_schedule(
    client: httpx.AsyncClient,
) -> None:
    saved = await save(client, schedule(paused=True))
    assert (saved["paused"], saved["nextRunTime"]) == (True, None)


async def test_bulk_pause_and_resume_report_each_name(client: httpx.AsyncClient) -> None:
    await save(client, schedule("a"))
    await save(client, schedule("b"))
    paused = await client.put("/api/scheduler/bulk/pause", json=["a", "missing", "b"])
    assert paused.json() == {
        "bulkSuccessfulResults": ["a", "b"],
        "bulkErrorResults": {"missing": "Schedule 'missing' not found"},
    }
    assert [s["paused"] for s in (await client.get("/api/scheduler/schedules")).json()] == [
        True,
        True,
    ]
    resumed = await client.put("/api/scheduler/bulk/resume", json=["b"])
    assert resumed.json() == {"bulkSuccessfulResults": ["b"], "bulkErrorResults": {}}
    assert (await get(client, "b"))["paused"] is False


# -- preview ----------------------------------------------------------------------------


async def test_next_few_schedules_gives_three_slots_by_default(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/scheduler/nextFewSchedules", params={"cronExpression": "0 * * * * *"}
    )
    assert response.json() == [SLOT1, SLOT2, SLOT2 + 60_000]


async def test_next_few_schedules_gives_at_most_five(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/scheduler/nextFewSchedules",
        params={"cronExpression": "0 * * * * *", "limit": 50},
    )
    assert len(response.json()) == 5


async def test_next_few_schedules_honours_start_and_end_inclusively(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(
        "/api/scheduler/nextFewSchedules",
        params={
            "cronExpression": "0 * * * * *",
            "scheduleStartTime": SLOT2,
            "scheduleEndTime": SLOT2 + 60_000,
            "limit": 5,
        },
    )
    assert response.json() == [SLOT2, SLOT2 + 60_000]


async def test_next_few_schedules_computes_in_the_given_zone(client: httpx.AsyncClient) -> None:
    # 22:13:20 UTC is 16:13:20 in Chicago (CST): the next 17:00 there is 23:00 UTC.
    params = {"cronExpression": "0 0 17 * * *", "zoneId": "America/Chicago", "limit": "1"}
    response = await client.get("/api/scheduler/nextFewSchedules", params=params)
    assert response.json() == [1_700_002_800_000]


async def test_next_few_schedules_of_an_invalid_cron_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/scheduler/nextFewSchedules", params={"cronExpression": "* * *"}
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith("Invalid cron expression")


# -- search and tags --------------------------------------------------------------------


async def test_schedule_search_filters_pages_and_sorts(client: httpx.AsyncClient) -> None:
    for name in ("nightly_a", "nightly_b", "hourly"):
        await save(client, schedule(name, paused=name == "nightly_b"))
    found = (
        await client.get(
            "/api/scheduler/schedules/search",
            params={"name": "nightly", "sort": "name:DESC", "size": 1},
        )
    ).json()
    assert found["totalHits"] == 2
    assert [s["name"] for s in found["results"]] == ["nightly_b"]
    paused = (await client.get("/api/scheduler/schedules/search", params={"paused": "true"})).json()
    assert [s["name"] for s in paused["results"]] == ["nightly_b"]
    oss_spelling = (
        await client.get("/api/scheduler/schedules/search", params={"scheduleName": "hour"})
    ).json()
    assert [s["name"] for s in oss_spelling["results"]] == ["hourly"]


async def test_schedule_search_rejects_an_unknown_sort_field(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/scheduler/schedules/search", params={"sort": "cron:ASC"})
    assert response.status_code == 400
    assert "nextRunTime" in response.json()["message"]


async def test_tags_are_upserted_by_key_read_and_removed(client: httpx.AsyncClient) -> None:
    await save(client, schedule())
    url = "/api/scheduler/schedules/every_minute/tags"
    put = [{"key": "team", "value": "a", "type": "METADATA"}, {"key": "env", "value": "dev"}]
    assert (await client.put(url, json=put)).status_code == 200
    assert (await client.put(url, json=[{"key": "env", "value": "prod"}])).status_code == 200
    assert (await client.get(url)).json() == [
        {"key": "team", "value": "a"},
        {"key": "env", "value": "prod"},
    ]
    gone = await client.request("DELETE", url, json=[{"key": "team", "value": "a"}])
    assert gone.status_code == 200
    assert (await client.get(url)).json() == [{"key": "env", "value": "prod"}]


async def test_schedules_are_found_by_tag(client: httpx.AsyncClient) -> None:
    await save(client, schedule("tagged", tags=[{"key": "env", "value": "prod"}]))
    await save(client, schedule("untagged"))
    found = await client.get("/api/scheduler/schedules/tags", params={"tag": "env:prod"})
    assert [s["name"] for s in found.json()] == ["tagged"]


async def test_saving_without_tags_keeps_the_tags_already_there(
    client: httpx.AsyncClient,
) -> None:
    await save(client, schedule(tags=[{"key": "env", "value": "prod"}]))
    saved = await save(client, schedule())  # the Python SDK's save request has no tags
    assert saved["tags"] == [{"key": "env", "value": "prod"}]


async def test_tags_of_a_missing_schedule_are_404(client: httpx.AsyncClient) -> None:
    response = await client.put("/api/scheduler/schedules/nope/tags", json=[])
    assert response.status_code == 404


# -- admin and permissions --------------------------------------------------------------


async def test_admin_pause_stops_this_instance_firing_until_admin_resume(
    client: httpx.AsyncClient, clock: ManualClock, scheduler: SchedulerService
) -> None:
    await register(client, flow())
    await save(client, schedule())
    assert (await client.get("/api/scheduler/admin/pause")).json() == {"status": "done"}
    clock.advance(60_000)
    assert await scheduler.fire_due() == 0
    assert (await client.get("/api/scheduler/admin/resume")).json() == {"status": "done"}
    assert await scheduler.fire_due() == 1


async def test_admin_requeue_answers_in_the_oss_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/scheduler/admin/requeue")
    assert response.json() == {"recordIds.size": 0, "sampleIds": []}


async def test_a_user_may_read_schedules_but_not_change_them(
    client: httpx.AsyncClient, anon_client: httpx.AsyncClient, token_for: TokenFor
) -> None:
    await save(client, schedule())
    headers = {"X-Authorization": await token_for(Role.USER)}
    read = await anon_client.get("/api/scheduler/schedules/every_minute", headers=headers)
    assert read.status_code == 200
    write = await anon_client.put("/api/scheduler/schedules/every_minute/pause", headers=headers)
    assert write.status_code == 403


async def test_a_workflow_manager_may_save_a_schedule_and_a_metadata_manager_may_not(
    anon_client: httpx.AsyncClient, token_for: TokenFor
) -> None:
    for role, status in ((Role.METADATA_MANAGER, 403), (Role.WORKFLOW_MANAGER, 200)):
        headers = {"X-Authorization": await token_for(role)}
        response = await anon_client.post(
            "/api/scheduler/schedules", json=schedule(), headers=headers
        )
        assert response.status_code == status, (role, response.text)


def test_saving_and_running_now_also_require_starting_workflows(api_app: FastAPI) -> None:
    wanted = {"/api/scheduler/schedules", "/api/scheduler/schedules/{name}/run"}
    posts = [
        r
        for r in iter_route_contexts(api_app.routes)
        if r.path in wanted and "POST" in (r.methods or set())
    ]
    assert len(posts) == 2
    for route in posts:
        permissions = {
            d.call.permission
            for d in route.dependant.dependencies
            if isinstance(d.call, Requirement)
        }
        assert permissions == {Permission.SCHEDULE_WRITE, Permission.WORKFLOW_EXECUTE}, route.path
