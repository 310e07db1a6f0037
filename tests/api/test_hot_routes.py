"""The lean routes of app/api/hot.py answer exactly as the FastAPI routes they shadow.

Each case is sent twice to the same app: once with the lean routes in front, once with them
taken out (the FastAPI route answers). Status, content type and body must match; answers
that carry a new id (a started workflow) are compared by shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.routing import Match

from app.api.hot import HOT_ROUTES
from app.auth.permissions import Role
from tests.conftest import TokenFor

FLOW = {
    "name": "hot",
    "version": 1,
    "tasks": [{"name": "hot_task", "taskReferenceName": "t", "type": "SIMPLE"}],
}


@contextmanager
def fastapi_only(app: FastAPI) -> Iterator[None]:
    """Take the lean routes out for the block, so the FastAPI routes answer."""
    saved = list(app.router.routes)
    app.router.routes[:] = [r for r in saved if r not in HOT_ROUTES]
    try:
        yield
    finally:
        app.router.routes[:] = saved


async def both(
    app: FastAPI, client: httpx.AsyncClient, method: str, url: str, **kwargs: Any
) -> tuple[httpx.Response, httpx.Response]:
    lean = await client.request(method, url, **kwargs)
    with fastapi_only(app):
        full = await client.request(method, url, **kwargs)
    return lean, full


def assert_same(lean: httpx.Response, full: httpx.Response) -> None:
    assert lean.status_code == full.status_code, (lean.text, full.text)
    assert lean.headers.get("content-type") == full.headers.get("content-type")
    assert lean.headers.get("allow") == full.headers.get("allow")
    assert lean.content == full.content


@pytest.fixture
async def hot_client(api_app: FastAPI, client: httpx.AsyncClient) -> httpx.AsyncClient:
    response = await client.post("/api/metadata/workflow", json=FLOW)
    assert response.status_code == 200, response.text
    return client


def test_the_lean_routes_come_first(api_app: FastAPI) -> None:
    assert api_app.router.routes[: len(HOT_ROUTES)] == HOT_ROUTES


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/tasks/poll/batch/hot_task"),
        ("POST", "/api/tasks"),
        ("POST", "/api/workflow/hot"),
    ],
)
def test_each_busy_request_is_taken_by_a_lean_route(method: str, path: str) -> None:
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    assert [r.matches(scope)[0] for r in HOT_ROUTES].count(Match.FULL) == 1


# -- start by name ----------------------------------------------------------------------


async def test_start_answers_a_new_id_as_plain_text_on_both(
    api_app: FastAPI, hot_client: httpx.AsyncClient
) -> None:
    lean, full = await both(api_app, hot_client, "POST", "/api/workflow/hot", json={"x": 1})
    assert lean.status_code == full.status_code == 200
    assert lean.headers["content-type"] == full.headers["content-type"]
    assert len(lean.text) == len(full.text) == 36 and lean.text != full.text


async def test_start_passes_version_correlation_id_and_priority(
    api_app: FastAPI, hot_client: httpx.AsyncClient
) -> None:
    params = {"version": "1", "correlationId": "c-1", "priority": "7"}
    lean = await hot_client.post("/api/workflow/hot", params=params, json={"k": "v"})
    assert lean.status_code == 200, lean.text
    wf = (await hot_client.get(f"/api/workflow/{lean.text}")).json()
    assert (wf["correlationId"], wf["priority"], wf["input"]) == ("c-1", 7, {"k": "v"})


@pytest.mark.parametrize(
    ("path", "kwargs"),
    [
        (
            "/api/workflow/hot",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
        ),
        (
            "/api/workflow/hot",
            {"content": b"[1, 2]", "headers": {"content-type": "application/json"}},
        ),
        ("/api/workflow/hot", {"content": b"", "headers": {"content-type": "application/json"}}),
        ("/api/workflow/hot", {"content": b"{}", "headers": {"content-type": "text/plain"}}),
        ("/api/workflow/hot", {"content": b"{}"}),
        ("/api/workflow/hot", {"json": {}, "params": {"version": "one"}}),
        ("/api/workflow/hot", {"json": {}, "params": {"priority": "100"}}),
        ("/api/workflow/hot", {"json": {}, "params": {"priority": "-1"}}),
        ("/api/workflow/nope", {"json": {}}),
        ("/api/workflow/hot", {"json": {}, "params": {"version": "9"}}),
    ],
    ids=[
        "malformed-json",
        "not-an-object",
        "empty-body",
        "not-json-content-type",
        "no-content-type",
        "version-not-a-number",
        "priority-too-high",
        "priority-negative",
        "unknown-workflow",
        "unknown-version",
    ],
)
async def test_start_rejects_bad_input_like_fastapi(
    api_app: FastAPI, hot_client: httpx.AsyncClient, path: str, kwargs: dict[str, Any]
) -> None:
    lean, full = await both(api_app, hot_client, "POST", path, **kwargs)
    assert 400 <= lean.status_code < 500
    assert_same(lean, full)


async def test_start_needs_a_token_like_fastapi(
    api_app: FastAPI, anon_client: httpx.AsyncClient, hot_client: httpx.AsyncClient
) -> None:
    lean, full = await both(api_app, anon_client, "POST", "/api/workflow/hot", json={})
    assert lean.status_code == 401
    assert_same(lean, full)


async def test_start_needs_the_execute_permission_like_fastapi(
    api_app: FastAPI,
    anon_client: httpx.AsyncClient,
    hot_client: httpx.AsyncClient,
    token_for: TokenFor,
) -> None:
    headers = {"X-Authorization": await token_for(Role.WORKER)}
    lean, full = await both(
        api_app, anon_client, "POST", "/api/workflow/hot", json={}, headers=headers
    )
    assert lean.status_code == 403
    assert_same(lean, full)


# -- batch poll -------------------------------------------------------------------------


async def test_batch_poll_hands_out_tasks_on_both(
    api_app: FastAPI, hot_client: httpx.AsyncClient
) -> None:
    for _ in range(2):
        assert (await hot_client.post("/api/workflow/hot", json={})).status_code == 200
    params = {"count": "1", "timeout": "0", "workerid": "w"}
    lean, full = await both(
        api_app, hot_client, "GET", "/api/tasks/poll/batch/hot_task", params=params
    )
    assert lean.status_code == full.status_code == 200
    assert [len(lean.json()), len(full.json())] == [1, 1]
    assert lean.json()[0]["taskId"] != full.json()[0]["taskId"]
    assert lean.json()[0]["workerId"] == full.json()[0]["workerId"] == "w"


@pytest.mark.parametrize(
    "params",
    [
        {"timeout": "0"},
        {"count": "0", "timeout": "0"},
        {"count": "1001", "timeout": "0"},
        {"count": "many", "timeout": "0"},
        {"count": "2", "timeout": "-1"},
        {"count": "2", "timeout": "soon"},
        {"count": "2", "timeout": "6000"},
        {"count": "2", "timeout": "0", "domain": "d", "workerid": "w"},
    ],
    ids=[
        "defaults",
        "count-zero",
        "count-too-big",
        "count-not-a-number",
        "timeout-negative",
        "timeout-not-a-number",
        "timeout-over-the-limit",
        "empty-domain-queue",
    ],
)
async def test_batch_poll_answers_like_fastapi(
    api_app: FastAPI, hot_client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    lean, full = await both(
        api_app, hot_client, "GET", "/api/tasks/poll/batch/hot_task", params=params
    )
    assert_same(lean, full)


async def test_batch_poll_needs_a_token_like_fastapi(
    api_app: FastAPI, anon_client: httpx.AsyncClient, hot_client: httpx.AsyncClient
) -> None:
    lean, full = await both(
        api_app, anon_client, "GET", "/api/tasks/poll/batch/hot_task", params={"timeout": "0"}
    )
    assert lean.status_code == 401
    assert_same(lean, full)


# -- update -----------------------------------------------------------------------------


async def _polled(client: httpx.AsyncClient) -> dict[str, Any]:
    assert (await client.post("/api/workflow/hot", json={})).status_code == 200
    response = await client.get(
        "/api/tasks/poll/batch/hot_task", params={"count": "1", "timeout": "0"}
    )
    assert response.status_code == 200 and response.json(), response.text
    task: dict[str, Any] = response.json()[0]
    return task


async def test_update_completes_the_task_on_both(
    api_app: FastAPI, hot_client: httpx.AsyncClient
) -> None:
    for lean_route in (True, False):
        task = await _polled(hot_client)
        body = {
            "workflowInstanceId": task["workflowInstanceId"],
            "taskId": task["taskId"],
            "status": "COMPLETED",
            "outputData": {"ok": 1},
        }
        if lean_route:
            response = await hot_client.post("/api/tasks", json=body)
        else:
            with fastapi_only(api_app):
                response = await hot_client.post("/api/tasks", json=body)
        assert response.status_code == 200, response.text
        assert response.text == task["taskId"]
        assert response.headers["content-type"].startswith("text/plain")
        wf = (await hot_client.get(f"/api/workflow/{task['workflowInstanceId']}")).json()
        assert (wf["status"], wf["tasks"][0]["outputData"]) == ("COMPLETED", {"ok": 1})


@pytest.mark.parametrize(
    "content",
    [
        b"{bad",
        b"",
        b"[]",
        json.dumps({"taskId": "t"}).encode(),
        json.dumps({"workflowInstanceId": "w", "taskId": "t", "status": "DONE"}).encode(),
        json.dumps(
            {"workflowInstanceId": "w", "taskId": "t", "status": "COMPLETED", "outputData": 3}
        ).encode(),
        json.dumps(
            {
                "workflowInstanceId": "w",
                "taskId": "t",
                "status": "COMPLETED",
                "callbackAfterSeconds": -1,
            }
        ).encode(),
        json.dumps({"workflowInstanceId": "w", "taskId": "nope", "status": "COMPLETED"}).encode(),
    ],
    ids=[
        "malformed-json",
        "empty-body",
        "not-an-object",
        "missing-fields",
        "unknown-status",
        "output-not-an-object",
        "negative-callback",
        "unknown-task",
    ],
)
async def test_update_rejects_bad_input_like_fastapi(
    api_app: FastAPI, hot_client: httpx.AsyncClient, content: bytes
) -> None:
    headers = {"content-type": "application/json"}
    lean, full = await both(
        api_app, hot_client, "POST", "/api/tasks", content=content, headers=headers
    )
    assert 400 <= lean.status_code < 500
    assert_same(lean, full)


async def test_update_needs_the_work_permission_like_fastapi(
    api_app: FastAPI,
    anon_client: httpx.AsyncClient,
    hot_client: httpx.AsyncClient,
    token_for: TokenFor,
) -> None:
    headers = {"X-Authorization": await token_for(Role.USER)}
    body = {"workflowInstanceId": "w", "taskId": "t", "status": "COMPLETED"}
    lean, full = await both(api_app, anon_client, "POST", "/api/tasks", json=body, headers=headers)
    assert lean.status_code in (401, 403)
    assert_same(lean, full)


async def test_other_methods_on_lean_paths_get_the_same_answer(
    api_app: FastAPI, hot_client: httpx.AsyncClient
) -> None:
    for method, url in [
        ("GET", "/api/tasks"),
        ("HEAD", "/api/tasks/poll/batch/hot_task"),
        ("PUT", "/api/workflow/hot"),
    ]:
        lean, full = await both(api_app, hot_client, method, url)
        assert_same(lean, full)
