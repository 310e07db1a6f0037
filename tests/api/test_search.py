"""Workflow and task search through the API, on each backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.auth.permissions import Role
from app.clock import ManualClock
from tests.conftest import TokenFor

T0 = 1_700_000_000_000  # ManualClock's start


def flow(name: str, ref: str) -> dict[str, Any]:
    return {
        "name": name,
        "version": 1,
        "tasks": [
            {
                "name": f"task_{ref}",
                "taskReferenceName": ref,
                "type": "SIMPLE",
                "inputParameters": {"note": "${workflow.input.note}"},
            }
        ],
    }


async def register(client: httpx.AsyncClient, definition: dict[str, Any]) -> None:
    response = await client.post("/api/metadata/workflow", json=definition)
    assert response.status_code == 200, response.text


async def start(client: httpx.AsyncClient, name: str, body: dict[str, Any], **params: Any) -> str:
    response = await client.post(f"/api/workflow/{name}", json=body, params=params)
    assert response.status_code == 200, response.text
    return response.text


@dataclass
class Seeded:
    w1: str  # alpha, c1, RUNNING, T0
    w2: str  # alpha, c2, TERMINATED at T0+3000, started T0+1000
    w3: str  # beta, no correlationId, priority 5, RUNNING, T0+2000
    w4: str  # beta, c4, RUNNING, T0+4000


async def seed(client: httpx.AsyncClient, clock: ManualClock) -> Seeded:
    await register(client, flow("alpha", "a"))
    await register(client, flow("beta", "b"))
    w1 = await start(client, "alpha", {"note": "50% off"}, correlationId="c1")
    clock.advance(1000)
    w2 = await start(client, "alpha", {"note": "500 off"}, correlationId="c2")
    clock.advance(1000)
    w3 = await start(client, "beta", {"note": "aXb Hello"}, priority=5)
    clock.advance(1000)
    response = await client.delete(f"/api/workflow/{w2}", params={"reason": "stop"})
    assert response.status_code == 200, response.text
    clock.advance(1000)
    w4 = await start(client, "beta", {"note": "a_b"}, correlationId="c4")
    return Seeded(w1, w2, w3, w4)


async def search(
    client: httpx.AsyncClient, path: str = "/api/workflow/search", **params: Any
) -> dict[str, Any]:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def ids(client: httpx.AsyncClient, **params: Any) -> list[str]:
    body = await search(client, **params)
    return [r["workflowId"] for r in body["results"]]


async def error(client: httpx.AsyncClient, path: str, **params: Any) -> str:
    response = await client.get(path, params=params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status"] == 400
    message: str = body["message"]
    return message


# -- workflows ----------------------------------------------------------------------------


async def test_everything_newest_first_by_default(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    s = await seed(client, clock)
    body = await search(client)
    assert body["totalHits"] == 4
    assert [r["workflowId"] for r in body["results"]] == [s.w4, s.w3, s.w2, s.w1]
    assert await ids(client, freeText="*", query="") == [s.w4, s.w3, s.w2, s.w1]


async def test_summary_shape(client: httpx.AsyncClient, clock: ManualClock) -> None:
    s = await seed(client, clock)
    body = await search(client, query=f"workflowId = '{s.w2}'")
    [summary] = body["results"]
    assert summary["workflowType"] == "alpha"
    assert summary["version"] == 1
    assert summary["correlationId"] == "c2"
    assert summary["status"] == "TERMINATED"
    assert summary["startTime"] == "2023-11-14T22:13:21.000Z"
    assert summary["endTime"] == "2023-11-14T22:13:23.000Z"
    assert summary["executionTime"] == 2000
    assert summary["input"] == '{"note":"500 off"}'
    assert isinstance(summary["output"], str)
    assert summary["priority"] == 0
    assert isinstance(summary["failedTaskNames"], list)
    assert isinstance(summary["failedReferenceTaskNames"], str)

    [running] = (await search(client, query=f"workflowId = '{s.w1}'"))["results"]
    assert "endTime" not in running
    assert running["executionTime"] == 0


async def test_search_v2_returns_workflows_without_tasks(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    s = await seed(client, clock)
    body = await search(client, "/api/workflow/search-v2", query="workflowType = 'beta'")
    assert body["totalHits"] == 2
    assert [r["workflowId"] for r in body["results"]] == [s.w4, s.w3]
    wf = body["results"][1]
    assert wf["workflowName"] == "beta"
    assert wf["input"] == {"note": "aXb Hello"}
    assert wf["priority"] == 5
    assert wf["startTime"] == T0 + 2000
    assert wf["tasks"] == []


async def test_equals_with_each_quoting(client: httpx.AsyncClient, clock: ManualClock) -> None:
    s = await seed(client, clock)
    assert await ids(client, query="workflowType = 'alpha'") == [s.w2, s.w1]
    assert await ids(client, query='workflowType="beta"') == [s.w4, s.w3]
    assert await ids(client, query="workflowType=beta") == [s.w4, s.w3]
    assert await ids(client, query="priority = 5") == [s.w3]
    assert await ids(client, query="version = 1") == [s.w4, s.w3, s.w2, s.w1]
    assert await ids(client, query="version = 2") == []


async def test_not_equal_keeps_rows_without_the_field(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    s = await seed(client, clock)
    # w3 has no correlationId: it is not 'c1' either.
    assert await ids(client, query="correlationId != 'c1'") == [s.w4, s.w3, s.w2]
    assert await ids(client, query="status != RUNNING") == [s.w2]


async def test_in_lists(client: httpx.AsyncClient, clock: ManualClock) -> None:
    s = await seed(client, clock)
    assert await ids(client, query="status IN (TERMINATED)") == [s.w2]
    assert await ids(client, query="status IN (RUNNING, 'TERMINATED')") == [
        s.w4,
        s.w3,
        s.w2,
        s.w1,
    ]
    assert await ids(client, query=f"workflowId IN ({s.w1}, '{s.w3}')") == [s.w3, s.w1]
    assert await ids(client, query="correlationId in ('c1', \"c4\", nope)") == [s.w4, s.w1]


async def test_time_ranges(client: httpx.AsyncClient, clock: ManualClock) -> None:
    s = await seed(client, clock)
    assert await ids(client, query=f"startTime > {T0 + 1000}") == [s.w4, s.w3]
    assert await ids(client, query=f"startTime >= {T0 + 1000}") == [s.w4, s.w3, s.w2]
    assert await ids(client, query=f"startTime < {T0 + 1000}") == [s.w1]
    assert await ids(client, query=f"startTime <= {T0 + 1000}") == [s.w2, s.w1]
    assert await ids(client, query=f"endTime >= {T0}") == [s.w2]
    assert await ids(client, query="startTime >= '2023-11-14T22:13:22Z'") == [s.w4, s.w3]
    assert await ids(client, query=f"updateTime >= {T0 + 3000}") == [s.w4, s.w2]


async def test_and_combines_clauses(client: httpx.AsyncClient, clock: ManualClock) -> None:
    s = await seed(client, clock)
    query = "workflowType = 'alpha' AND status = 'RUNNING'"
    assert await ids(client, query=query) == [s.w1]
    query = f"(workflowType IN (alpha, beta) and startTime > {T0}) AND correlationId != c4"
    assert await ids(client, query=query) == [s.w3, s.w2]


async def test_sorting(client: httpx.AsyncClient, clock: ManualClock) -> None:
    s = await seed(client, clock)
    assert await ids(client, sort="startTime:ASC") == [s.w1, s.w2, s.w3, s.w4]
    assert await ids(client, sort="startTime") == [s.w1, s.w2, s.w3, s.w4]
    assert await ids(client, sort="workflowType:ASC|startTime:DESC") == [s.w2, s.w1, s.w4, s.w3]
    # Repeated sort parameters work as `|`.
    response = await client.get(
        "/api/workflow/search", params=[("sort", "workflowType:DESC"), ("sort", "startTime:ASC")]
    )
    assert [r["workflowId"] for r in response.json()["results"]] == [s.w3, s.w4, s.w1, s.w2]
    # Workflows without an end time come last either way.
    assert (await ids(client, sort="endTime:DESC"))[0] == s.w2
    assert (await ids(client, sort="endTime:ASC"))[0] == s.w2


async def test_equal_sort_keys_page_by_id(client: httpx.AsyncClient) -> None:
    await register(client, flow("alpha", "a"))
    started = {await start(client, "alpha", {}) for _ in range(5)}  # same startTime
    pages = [await ids(client, size=2, start=n) for n in (0, 2, 4)]
    assert [len(p) for p in pages] == [2, 2, 1]
    seen = [i for p in pages for i in p]
    assert seen == sorted(started)


async def test_paging(client: httpx.AsyncClient, clock: ManualClock) -> None:
    s = await seed(client, clock)
    first = await search(client, size=2)
    assert first["totalHits"] == 4
    assert [r["workflowId"] for r in first["results"]] == [s.w4, s.w3]
    second = await search(client, size=2, start=2)
    assert (second["totalHits"], [r["workflowId"] for r in second["results"]]) == (
        4,
        [s.w2, s.w1],
    )
    assert await search(client, start=4) == {"totalHits": 4, "results": []}
    assert await search(client, size=0) == {"totalHits": 4, "results": []}
    filtered = await search(client, size=1, start=1, query="workflowType = 'alpha'")
    assert (filtered["totalHits"], [r["workflowId"] for r in filtered["results"]]) == (
        2,
        [s.w1],
    )


async def test_free_text_is_a_literal_case_sensitive_substring(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    s = await seed(client, clock)
    # `%` and `_` are not wildcards: "50%" is not "500", "a_b" is not "aXb".
    assert await ids(client, freeText="50%") == [s.w1]
    assert await ids(client, freeText="a_b") == [s.w4]
    assert await ids(client, freeText="Hello") == [s.w3]
    assert await ids(client, freeText="hello") == []
    assert await ids(client, freeText="off", query="correlationId = 'c2'") == [s.w2]
    body = await search(client, freeText="off")
    assert body["totalHits"] == 2
    # Task documents are searched the same way.
    tasks = await search(client, "/api/tasks/search", freeText="50%")
    assert [t["workflowId"] for t in tasks["results"]] == [s.w1]


async def test_size_over_5000_is_400(client: httpx.AsyncClient) -> None:
    message = await error(client, "/api/workflow/search", size=5001)
    assert message == "Cannot return more than 5000 workflows. Please use pagination."
    message = await error(client, "/api/tasks/search-v2", size=5001)
    assert message == "Cannot return more than 5000 tasks. Please use pagination."
    assert (await search(client, size=5000))["totalHits"] == 0


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"query": "owner = 'x'"}, "unknown field 'owner'"),
        ({"query": "workflowType = 'x' OR status = RUNNING"}, "OR (at position 20)"),
        ({"query": "workflowType = 'x"}, "unterminated quoted text"),
        ({"query": "status IN (RUNNING"}, "expected ',' or ')' in the IN list of 'status'"),
        ({"query": "status = 'DONE'"}, "unknown status 'DONE'"),
        ({"query": "version = 'one'"}, "'version' needs an integer"),
        ({"query": "workflowType LIKE 'x%'"}, "unsupported operator 'LIKE'"),
        ({"sort": "owner:ASC"}, "unknown field 'owner'"),
        ({"sort": "startTime:SIDEWAYS"}, "ASC or DESC"),
        ({"start": -1}, "start must not be negative"),
    ],
)
async def test_bad_requests_name_the_problem(
    client: httpx.AsyncClient, params: dict[str, Any], fragment: str
) -> None:
    for path in ("/api/workflow/search", "/api/workflow/search-v2"):
        assert fragment in await error(client, path, **params)


async def test_task_fields_are_validated(client: httpx.AsyncClient) -> None:
    message = await error(client, "/api/tasks/search", query="taskDefName = 'x'")
    assert "unknown field 'taskDefName'" in message
    message = await error(client, "/api/tasks/search", query="status = RUNNING")
    assert "unknown status 'RUNNING'" in message


# -- tasks --------------------------------------------------------------------------------


async def test_task_search_by_type_and_status(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    s = await seed(client, clock)
    body = await search(client, "/api/tasks/search", query="taskType = 'task_a'")
    assert body["totalHits"] == 2
    # Newest scheduled first: w2's task (cancelled by the terminate), then w1's.
    assert [(t["workflowId"], t["status"]) for t in body["results"]] == [
        (s.w2, "CANCELED"),
        (s.w1, "SCHEDULED"),
    ]
    body = await search(
        client, "/api/tasks/search", query="taskType = task_a AND status = SCHEDULED"
    )
    assert [t["workflowId"] for t in body["results"]] == [s.w1]
    body = await search(client, "/api/tasks/search", query="status IN (SCHEDULED, CANCELED)")
    assert body["totalHits"] == 4

    # task_a has one task in its queue (w2's was cancelled), so exactly that one is claimed.
    polled = await client.get("/api/tasks/poll/task_a", params={"workerid": "w"})
    assert polled.status_code == 200, polled.text
    body = await search(client, "/api/tasks/search", query="status = 'IN_PROGRESS'")
    assert [t["taskId"] for t in body["results"]] == [polled.json()["taskId"]]
    assert body["results"][0]["workflowId"] == s.w1


async def test_task_summary_and_full_shapes(client: httpx.AsyncClient, clock: ManualClock) -> None:
    s = await seed(client, clock)
    [summary] = (await search(client, "/api/tasks/search", query=f"workflowId = '{s.w3}'"))[
        "results"
    ]
    assert summary["taskType"] == "task_b"
    assert summary["taskDefName"] == "task_b"
    assert summary["workflowType"] == "beta"
    assert summary["status"] == "SCHEDULED"
    assert summary["scheduledTime"] == "2023-11-14T22:13:22.000Z"
    assert summary["input"] == '{"note":"aXb Hello"}'
    assert summary["output"] == "{}"
    assert summary["workflowPriority"] == 5
    assert summary["executionTime"] == 0

    [task] = (
        await search(client, "/api/tasks/search-v2", query=f"taskId = '{summary['taskId']}'")
    )["results"]
    assert task["referenceTaskName"] == "b"
    assert task["inputData"] == {"note": "aXb Hello"}
    assert task["scheduledTime"] == T0 + 2000
    assert task["workflowInstanceId"] == s.w3


async def test_task_sort_and_paging(client: httpx.AsyncClient, clock: ManualClock) -> None:
    s = await seed(client, clock)
    body = await search(client, "/api/tasks/search", sort="scheduledTime:ASC", size=3)
    assert body["totalHits"] == 4
    assert [t["workflowId"] for t in body["results"]] == [s.w1, s.w2, s.w3]
    query = "referenceTaskName = 'b'"
    body = await search(client, "/api/tasks/search", query=query, sort="scheduledTime:DESC")
    assert [t["workflowId"] for t in body["results"]] == [s.w4, s.w3]


# -- permissions --------------------------------------------------------------------------


async def test_search_needs_workflow_read(
    anon_client: httpx.AsyncClient, token_for: TokenFor
) -> None:
    paths = [
        "/api/workflow/search",
        "/api/workflow/search-v2",
        "/api/tasks/search",
        "/api/tasks/search-v2",
    ]
    worker = {"X-Authorization": await token_for(Role.WORKER)}
    user = {"X-Authorization": await token_for(Role.USER)}
    for path in paths:
        assert (await anon_client.get(path)).status_code == 401
        assert (await anon_client.get(path, headers=worker)).status_code == 403
        response = await anon_client.get(path, headers=user)
        assert (response.status_code, response.json()) == (200, {"totalHits": 0, "results": []})
