"""HTTP through the API: the call runs on the background runner, its outcome becomes
the task's (a 2xx completes it with the response, anything else fails it), the TaskDef
named like the task retries it, and a workflow retry runs the call again."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.api.flows import drain, run, task_defs, wf
from tests.conftest import free_port


class _Handler(BaseHTTPRequestHandler):
    """`/ok` answers JSON echoing the request; any other path is a 404 with a text body."""

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        sent = json.loads(self.rfile.read(length)) if length else None
        if self.path == "/ok":
            status, kind = 200, "application/json"
            payload = json.dumps({"method": self.command, "sent": sent}).encode()
        else:
            status, kind, payload = 404, "text/plain", b"no such thing"
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _answer
    do_POST = _answer


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def http(inputs: dict[str, Any], **extra: Any) -> list[dict[str, Any]]:
    return [
        {"name": "call", "taskReferenceName": "call", "type": "HTTP", "inputParameters": inputs}
        | extra
    ]


def nowhere() -> str:
    return f"http://127.0.0.1:{free_port()}/nothing-listens-here"


async def test_a_2xx_answer_completes_the_task_with_the_response(
    client: httpx.AsyncClient, api_app: FastAPI, server: str
) -> None:
    inputs = {"uri": f"{server}/ok", "method": "POST", "body": {"k": "${workflow.input.k}"}}
    workflow_id = await run(client, http(inputs), {"k": 7})
    await drain(api_app)
    body = await wf(client, workflow_id)
    assert body["status"] == "COMPLETED"
    response = body["tasks"][0]["outputData"]["response"]
    assert (response["statusCode"], response["reasonPhrase"]) == (200, "OK")
    assert response["headers"]["content-type"] == ["application/json"]
    assert response["body"] == {"method": "POST", "sent": {"k": 7}}


async def test_the_legacy_http_request_input_is_understood_too(
    client: httpx.AsyncClient, api_app: FastAPI, server: str
) -> None:
    inputs = {"http_request": {"uri": f"{server}/ok", "method": "GET"}}
    workflow_id = await run(client, http(inputs))
    await drain(api_app)
    body = await wf(client, workflow_id)
    assert body["status"] == "COMPLETED"
    assert body["tasks"][0]["outputData"]["response"]["body"] == {"method": "GET", "sent": None}


async def test_a_non_2xx_answer_fails_the_task_with_status_and_body_in_the_reason(
    client: httpx.AsyncClient, api_app: FastAPI, server: str
) -> None:
    workflow_id = await run(client, http({"uri": f"{server}/missing", "method": "GET"}))
    await drain(api_app)
    body = await wf(client, workflow_id)
    task = body["tasks"][0]
    assert task["status"] == "FAILED"
    assert task["reasonForIncompletion"] == (
        'Failed to invoke HTTP task due to: 404 Not Found: "no such thing"'
    )
    assert task["outputData"]["response"]["statusCode"] == 404
    assert body["status"] == "FAILED"


async def test_a_missing_uri_fails_the_task_with_conductors_message(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    workflow_id = await run(client, http({"uri": "${workflow.input.uri}", "method": "GET"}))
    await drain(api_app)
    task = (await wf(client, workflow_id))["tasks"][0]
    assert task["status"] in ("FAILED", "FAILED_WITH_TERMINAL_ERROR")
    assert task["reasonForIncompletion"] == (
        "Missing HTTP URI.  See documentation for HttpTask for required input parameters"
    )


async def test_the_task_def_named_like_the_http_task_retries_it(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    await task_defs(client, {"name": "call", "retryCount": 1, "retryDelaySeconds": 0})
    workflow_id = await run(client, http({"uri": nowhere(), "connectionTimeOut": 500}))
    await drain(api_app)
    body = await wf(client, workflow_id)
    assert [(t["status"], t["retryCount"]) for t in body["tasks"]] == [
        ("FAILED", 0),
        ("FAILED", 1),
    ]
    assert body["status"] == "FAILED"


async def test_async_complete_keeps_the_task_in_progress_until_it_is_updated(
    client: httpx.AsyncClient, api_app: FastAPI, server: str
) -> None:
    tasks = http({"uri": f"{server}/ok", "method": "GET"}, asyncComplete=True)
    workflow_id = await run(client, tasks)
    await drain(api_app)
    body = await wf(client, workflow_id)
    assert (body["status"], body["tasks"][0]["status"]) == ("RUNNING", "IN_PROGRESS")
    r = await client.post(f"/api/tasks/{workflow_id}/call/COMPLETED", json={"done": True})
    assert r.status_code == 200
    assert (await wf(client, workflow_id))["status"] == "COMPLETED"


async def test_retrying_a_failed_http_workflow_runs_the_http_task_again(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    uri = f"http://127.0.0.1:{free_port()}/nothing-listens-here"
    tasks = [
        {
            "name": "call",
            "taskReferenceName": "call",
            "type": "HTTP",
            "inputParameters": {"uri": uri, "method": "GET", "connectionTimeOut": 500},
        }
    ]
    workflow_id = await run(client, tasks)
    await drain(api_app)
    assert (await wf(client, workflow_id))["status"] == "FAILED"
    assert (await client.post(f"/api/workflow/{workflow_id}/retry")).status_code == 204
    await drain(api_app)
    body = await wf(client, workflow_id)
    assert [t["status"] for t in body["tasks"]] == ["FAILED", "FAILED"]
    assert body["tasks"][1]["retriedTaskId"] == body["tasks"][0]["taskId"]
