"""The HTTP system task against a real HTTP/1.1 server on 127.0.0.1.

The server is a few dozen lines on `asyncio.start_server` so the tests control bytes on the
wire (chunked bodies, duplicate headers, slow answers) and count connections (keep-alive).
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from app.tasks.base import AsyncTask
from app.tasks.http import HttpTask, redact_uri

pytestmark = pytest.mark.timeout(30)


@dataclass
class Received:
    method: str
    target: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


class TinyServer:
    """A bounded HTTP/1.1 responder with keep-alive; `close()` ends every connection."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.connections = 0
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        async with asyncio.timeout(5):
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections += 1
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                method, target, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, value = raw.decode("utf-8").split(":", 1)
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                request = Received(method, target, headers, body)
                self.requests.append(request)
                await self._route(request, writer)
                if headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _route(self, req: Received, writer: asyncio.StreamWriter) -> None:
        parts = urlsplit(req.target)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        if path == "/json":
            await send_json(writer, 200, {"hello": "world", "n": 1, "items": [1, 2]})
        elif path == "/echo":
            echoed = {
                "method": req.method,
                "path": path,
                "headers": req.headers,
                "body": req.body.decode("utf-8"),
            }
            await send_json(writer, 200, echoed)
        elif path == "/text":
            await send(writer, 200, [("Content-Type", "text/plain; charset=utf-8")], b"hi there")
        elif path == "/json-as-text":
            await send(writer, 200, [("Content-Type", "text/plain")], b'{"a": 1}')
        elif path == "/no-type":
            await send(writer, 200, [], b'{"a": 1}')
        elif path == "/multi":
            headers = [("X-Multi", "one"), ("X-Multi", "two"), ("Content-Type", "text/plain")]
            await send(writer, 200, headers, b"ok")
        elif path == "/empty":
            await send(writer, 204, [], b"")
        elif path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            if code >= 500:
                await send_json(writer, code, {"error": "boom", "detail": "x" * 600})
            else:
                await send(writer, code, [("Content-Type", "text/plain")], b"no such thing")
        elif path == "/slow":
            await asyncio.sleep(min(float(query["ms"]), 5000) / 1000)
            await send_json(writer, 200, {"slow": True})
        elif path == "/big":
            size = int(query["n"])
            data = b"x" * size
            if req.method == "HEAD":  # the size of the body, without the body
                writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
                await writer.drain()
            elif query.get("chunked"):
                await send_chunked(writer, [data[i : i + 1024] for i in range(0, size, 1024)])
            else:
                await send(writer, 200, [("Content-Type", "text/plain")], data)
        elif path == "/redirect":
            await send(writer, 302, [("Location", "/json")], b"")
        else:
            await send(writer, 404, [], b"")


async def send(
    writer: asyncio.StreamWriter, status: int, headers: list[tuple[str, str]], body: bytes
) -> None:
    reason = {200: "OK", 204: "No Content", 302: "Found", 404: "Not Found"}.get(status, "Other")
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers)]
    if status != 204:
        lines.append(f"Content-Length: {len(body)}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    await writer.drain()


async def send_json(writer: asyncio.StreamWriter, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    await send(writer, status, [("Content-Type", "application/json")], body)


async def send_chunked(writer: asyncio.StreamWriter, chunks: list[bytes]) -> None:
    head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
    writer.write(head.encode())
    for chunk in chunks:
        writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        await writer.drain()
    writer.write(b"0\r\n\r\n")
    await writer.drain()


def free_port() -> int:
    """A port with nothing listening on it (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def server() -> AsyncIterator[TinyServer]:
    srv = TinyServer()
    await srv.start()
    try:
        yield srv
    finally:
        await srv.close()


@pytest.fixture
async def task() -> AsyncIterator[HttpTask]:
    http = HttpTask()
    try:
        yield http
    finally:
        await http.close()


def response_of(output: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = output["response"]
    return response


# --- success ----------------------------------------------------------------------------


async def test_satisfies_the_async_task_protocol(task: HttpTask) -> None:
    runner: AsyncTask = task
    assert runner is task


async def test_get_json_is_parsed(server: TinyServer, task: HttpTask) -> None:
    outcome = await task.execute({"uri": server.url("/json")})
    assert outcome.status == "COMPLETED", outcome.reason
    response = response_of(outcome.output)
    assert response["statusCode"] == 200
    assert response["reasonPhrase"] == "OK"
    assert response["body"] == {"hello": "world", "n": 1, "items": [1, 2]}
    assert response["headers"]["Content-Type"] == ["application/json"]
    assert server.requests[0].method == "GET"
    assert server.requests[0].headers["accept"] == "application/json"


async def test_post_json_body_is_sent_as_json(server: TinyServer, task: HttpTask) -> None:
    body = {"name": "Ada", "tags": ["x", "é"], "n": 1.5, "ok": True, "none": None}
    outcome = await task.execute({"uri": server.url("/echo"), "method": "post", "body": body})
    assert outcome.status == "COMPLETED", outcome.reason
    echoed = response_of(outcome.output)["body"]
    assert echoed["method"] == "POST"
    assert echoed["headers"]["content-type"] == "application/json"
    assert json.loads(echoed["body"]) == body


async def test_string_body_is_sent_as_is(server: TinyServer, task: HttpTask) -> None:
    outcome = await task.execute(
        {
            "uri": server.url("/echo"),
            "method": "PUT",
            "body": "plain words",
            "contentType": "text/plain",
        }
    )
    echoed = response_of(outcome.output)["body"]
    assert echoed["body"] == "plain words"
    assert echoed["headers"]["content-type"] == "text/plain"


async def test_form_body_is_url_encoded(server: TinyServer, task: HttpTask) -> None:
    outcome = await task.execute(
        {
            "uri": server.url("/echo"),
            "method": "POST",
            "body": {"a": "1 2", "b": True},
            "contentType": "application/x-www-form-urlencoded",
        }
    )
    assert response_of(outcome.output)["body"]["body"] == "a=1+2&b=true"


async def test_get_without_body_sends_no_content_type(server: TinyServer, task: HttpTask) -> None:
    await task.execute({"uri": server.url("/echo")})
    assert "content-type" not in server.requests[0].headers


async def test_text_response_stays_text(server: TinyServer, task: HttpTask) -> None:
    outcome = await task.execute({"uri": server.url("/text")})
    assert response_of(outcome.output)["body"] == "hi there"
    # JSON-looking text under a non-JSON content type is not parsed.
    outcome = await task.execute({"uri": server.url("/json-as-text")})
    assert response_of(outcome.output)["body"] == '{"a": 1}'


async def test_json_without_content_type_is_parsed(server: TinyServer, task: HttpTask) -> None:
    outcome = await task.execute({"uri": server.url("/no-type")})
    assert response_of(outcome.output)["body"] == {"a": 1}


async def test_empty_response_body_is_none(server: TinyServer, task: HttpTask) -> None:
    outcome = await task.execute({"uri": server.url("/empty"), "method": "DELETE"})
    assert outcome.status == "COMPLETED"
    assert response_of(outcome.output)["statusCode"] == 204
    assert response_of(outcome.output)["body"] is None


async def test_response_headers_are_lists(server: TinyServer, task: HttpTask) -> None:
    outcome = await task.execute({"uri": server.url("/multi")})
    headers = response_of(outcome.output)["headers"]
    assert headers["X-Multi"] == ["one", "two"]
    assert headers["Content-Length"] == ["2"]
    assert all(isinstance(v, list) for v in headers.values())


async def test_custom_request_headers_are_sent(server: TinyServer, task: HttpTask) -> None:
    outcome = await task.execute(
        {
            "uri": server.url("/echo"),
            "headers": {"X-Token": "abc", "X-Count": 5, "X-Flag": True, "X-Skip": None},
            "accept": ["application/json", "text/plain"],
        }
    )
    sent = response_of(outcome.output)["body"]["headers"]
    assert sent["x-token"] == "abc"
    assert sent["x-count"] == "5"
    assert sent["x-flag"] == "true"
    assert "x-skip" not in sent
    assert sent["accept"] == "application/json, text/plain"


async def test_explicit_headers_override_accept_and_content_type(
    server: TinyServer, task: HttpTask
) -> None:
    await task.execute(
        {
            "uri": server.url("/echo"),
            "method": "POST",
            "body": {"a": 1},
            "headers": {"Accept": "text/csv", "content-type": "application/vnd.x+json"},
        }
    )
    assert server.requests[0].headers["accept"] == "text/csv"
    assert server.requests[0].headers["content-type"] == "application/vnd.x+json"


@pytest.mark.parametrize("wrapped", [True, False], ids=["http_request", "flat"])
async def test_both_input_shapes(server: TinyServer, task: HttpTask, wrapped: bool) -> None:
    spec = {"uri": server.url("/echo"), "method": "PATCH", "body": [1, 2, 3]}
    outcome = await task.execute({"http_request": spec} if wrapped else spec)
    assert outcome.status == "COMPLETED", outcome.reason
    echoed = response_of(outcome.output)["body"]
    assert echoed["method"] == "PATCH"
    assert json.loads(echoed["body"]) == [1, 2, 3]


async def test_get_follows_redirects(server: TinyServer, task: HttpTask) -> None:
    outcome = await task.execute({"uri": server.url("/redirect")})
    assert outcome.status == "COMPLETED"
    assert response_of(outcome.output)["body"]["hello"] == "world"


async def test_post_does_not_follow_redirects(server: TinyServer, task: HttpTask) -> None:
    outcome = await task.execute({"uri": server.url("/redirect"), "method": "POST", "body": {}})
    assert outcome.status == "FAILED"
    assert response_of(outcome.output)["statusCode"] == 302
    assert response_of(outcome.output)["headers"]["Location"] == ["/json"]


@pytest.mark.parametrize("flag", [True, "true"])
async def test_async_complete_leaves_task_waiting(
    server: TinyServer, task: HttpTask, flag: bool | str
) -> None:
    outcome = await task.execute({"uri": server.url("/json"), "asyncComplete": flag})
    assert outcome.status == "IN_PROGRESS"
    assert outcome.wait_for_update is True
    assert response_of(outcome.output)["body"]["hello"] == "world"


async def test_async_complete_does_not_hide_failures(server: TinyServer, task: HttpTask) -> None:
    outcome = await task.execute({"uri": server.url("/status/404"), "asyncComplete": True})
    assert outcome.status == "FAILED"
    assert outcome.wait_for_update is False


# --- HTTP errors ------------------------------------------------------------------------


async def test_404_fails_and_keeps_the_response_map(server: TinyServer, task: HttpTask) -> None:
    outcome = await task.execute({"uri": server.url("/status/404")})
    assert outcome.status == "FAILED"
    assert outcome.reason == 'Failed to invoke HTTP task due to: 404 Not Found: "no such thing"'
    response = response_of(outcome.output)
    assert response["statusCode"] == 404
    assert response["reasonPhrase"] == "Not Found"
    assert response["body"] == "no such thing"
    assert response["headers"]["Content-Type"] == ["text/plain"]


async def test_500_fails_with_parsed_body_and_short_reason(
    server: TinyServer, task: HttpTask
) -> None:
    outcome = await task.execute({"uri": server.url("/status/500")})
    assert outcome.status == "FAILED"
    assert outcome.reason is not None
    assert outcome.reason.startswith("Failed to invoke HTTP task due to: 500 Internal Server Error")
    assert outcome.reason.endswith('..."')
    assert len(outcome.reason) < 600
    response = response_of(outcome.output)
    assert response["statusCode"] == 500
    assert response["body"]["error"] == "boom"


# --- network errors ---------------------------------------------------------------------


async def test_read_timeout_fails_quickly(server: TinyServer, task: HttpTask) -> None:
    started = time.monotonic()
    outcome = await task.execute({"uri": server.url("/slow?ms=3000"), "readTimeOut": 200})
    assert time.monotonic() - started < 2
    assert outcome.status == "FAILED"
    assert outcome.reason is not None
    assert outcome.reason.startswith("Read timed out after 200 ms")
    assert response_of(outcome.output) == {"error": outcome.reason}


async def test_timeout_hint_caps_the_whole_call(server: TinyServer, task: HttpTask) -> None:
    started = time.monotonic()
    outcome = await task.execute(
        {"uri": server.url("/slow?ms=3000"), "readTimeOut": 10_000}, timeout_hint_s=0.2
    )
    assert time.monotonic() - started < 2
    assert outcome.status == "FAILED"
    assert outcome.reason is not None
    assert "did not complete within 0.2 s" in outcome.reason


async def test_connection_refused_fails(task: HttpTask) -> None:
    uri = f"http://127.0.0.1:{free_port()}/x"
    outcome = await task.execute({"uri": uri})
    assert outcome.status == "FAILED"
    assert outcome.reason == f"Connection refused: {uri}"
    assert response_of(outcome.output) == {"error": outcome.reason}


async def test_secrets_never_appear_in_reasons(server: TinyServer, task: HttpTask) -> None:
    refused = f"http://alice:s3cret@127.0.0.1:{free_port()}/x"
    outcome = await task.execute(
        {"uri": refused, "headers": {"Authorization": "Bearer tok3n"}, "body": "b0dy"}
    )
    assert outcome.status == "FAILED"
    assert outcome.reason is not None
    for secret in ("alice", "s3cret", "tok3n", "b0dy"):
        assert secret not in outcome.reason
        assert secret not in json.dumps(outcome.output)
    assert f"127.0.0.1:{refused.rsplit(':', 1)[1]}" in outcome.reason

    # Userinfo still authenticates the request (basic auth), and stays out of timeout reasons.
    slow = server.url("/slow?ms=3000").replace("http://", "http://alice:s3cret@")
    outcome = await task.execute({"uri": slow, "readTimeOut": 100})
    assert outcome.reason is not None
    assert "s3cret" not in outcome.reason
    expected = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    assert server.requests[-1].headers["authorization"] == expected


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("http://u:p@host/path", "http://host/path"),
        ("https://u@host:8080?q=1", "https://host:8080?q=1"),
        ("http://u:p@ss@host/a@b", "http://host/a@b"),
        ("http://host/users/@me", "http://host/users/@me"),
        ("not a uri", "not a uri"),
    ],
)
def test_redact_uri(uri: str, expected: str) -> None:
    assert redact_uri(uri) == expected


# --- size cap ---------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_response_over_the_cap_fails(server: TinyServer, chunked: bool) -> None:
    task = HttpTask(max_response_bytes=4000)
    try:
        flag = "&chunked=1" if chunked else ""
        outcome = await task.execute({"uri": server.url(f"/big?n=100000{flag}")})
        assert outcome.status == "FAILED"
        assert outcome.reason == "Response body exceeds the limit of 4000 bytes"
        response = response_of(outcome.output)
        assert response["statusCode"] == 200
        assert response["error"] == outcome.reason
        assert "body" not in response

        at_limit = await task.execute({"uri": server.url(f"/big?n=4000{flag}")})
        assert at_limit.status == "COMPLETED"
        assert len(response_of(at_limit.output)["body"]) == 4000

        head = await task.execute({"uri": server.url("/big?n=100000"), "method": "HEAD"})
        assert head.status == "COMPLETED", head.reason
        assert response_of(head.output)["headers"]["Content-Length"] == ["100000"]
        assert response_of(head.output)["body"] is None
    finally:
        await task.close()


# --- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task_input", "reason_start"),
    [
        ({}, "Missing HTTP URI"),
        ({"http_request": {"method": "GET"}}, "Missing HTTP URI"),
        ({"uri": ""}, "Missing HTTP URI"),
        ({"uri": "http://127.0.0.1/", "method": ""}, "No HTTP method specified"),
        ({"uri": "http://127.0.0.1/", "method": "FETCH"}, "Invalid HTTP method: FETCH"),
        ({"uri": "ftp://u:pw@127.0.0.1/"}, "Invalid HTTP URI"),
        ({"uri": "http://127.0.0.1/", "readTimeOut": -1}, "Invalid readTimeOut"),
        ({"uri": "http://127.0.0.1/", "connectionTimeOut": "soon"}, "Invalid connectionTimeOut"),
        ({"uri": "http://127.0.0.1/", "headers": ["x"]}, "Invalid HTTP headers"),
        ({"uri": "http://127.0.0.1/", "headers": {"X": "a\r\nb: c"}}, "Invalid value"),
        ({"uri": "http://127.0.0.1/", "headers": {"Bad Name": "v"}}, "Invalid HTTP header name"),
    ],
)
async def test_bad_input_is_a_terminal_failure(
    task: HttpTask, task_input: dict[str, Any], reason_start: str
) -> None:
    outcome = await task.execute(task_input)
    assert outcome.status == "FAILED_WITH_TERMINAL_ERROR"
    assert outcome.reason is not None
    assert outcome.reason.startswith(reason_start)
    assert "pw" not in outcome.reason
    assert "a\r\nb" not in outcome.reason


async def test_numeric_string_timeouts_are_accepted(server: TinyServer, task: HttpTask) -> None:
    outcome = await task.execute(
        {"uri": server.url("/json"), "connectionTimeOut": "1000", "readTimeOut": 1000.0}
    )
    assert outcome.status == "COMPLETED", outcome.reason


# --- client slots -----------------------------------------------------------------------


async def test_many_concurrent_requests_share_few_clients(server: TinyServer) -> None:
    task = HttpTask(slots=8)
    try:
        async with asyncio.timeout(20):
            outcomes = await asyncio.gather(
                *(task.execute({"uri": server.url(f"/echo?i={i}")}) for i in range(50))
            )
        assert [o.status for o in outcomes] == ["COMPLETED"] * 50
        paths = sorted(response_of(o.output)["body"]["path"] for o in outcomes)
        assert paths == ["/echo"] * 50
        assert len(server.requests) == 50
        # One request at a time per client, so never more connections than slots.
        assert server.connections <= 8
    finally:
        await task.close()


async def test_connections_are_kept_alive(server: TinyServer) -> None:
    task = HttpTask(slots=1)
    try:
        for _ in range(5):
            outcome = await task.execute({"uri": server.url("/json")})
            assert outcome.status == "COMPLETED"
        assert server.connections == 1
    finally:
        await task.close()


async def test_close_rejects_waiting_and_new_requests(server: TinyServer) -> None:
    task = HttpTask(slots=1)
    slow = asyncio.create_task(task.execute({"uri": server.url("/slow?ms=300")}))
    await asyncio.sleep(0.05)  # let it take the only client
    waiting = asyncio.create_task(task.execute({"uri": server.url("/json")}))
    await asyncio.sleep(0.05)
    await task.close()
    async with asyncio.timeout(5):
        with pytest.raises(RuntimeError, match="closed"):
            await waiting
        # The request already in flight finishes normally.
        assert (await slow).status == "COMPLETED"
    with pytest.raises(RuntimeError, match="closed"):
        await task.execute({"uri": server.url("/json")})
