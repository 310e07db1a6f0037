"""The HTTP task's lean HTTP/1.1 client (app.tasks.http_wire) against raw servers on 127.0.0.1.

Each server is a script over a real socket, so the tests choose the exact bytes on the wire
(chunked, gzip, bare EOF, garbage) and see every connection. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import json
import random
import re
import socket
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import uvloop

from app.tasks import http as http_task
from app.tasks.http import HttpTask

pytestmark = pytest.mark.timeout(30)


class Peer:
    """One accepted connection, seen from the server side."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def request(self) -> tuple[str, dict[str, str], bytes] | None:
        """The next request (request line, lower-cased headers, body); None at EOF."""
        try:
            head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        except asyncio.IncompleteReadError:
            return None
        lines = head.decode("utf-8").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(self.reader.readexactly(length), 10) if length else b""
        return lines[0], headers, body

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()


Script = Callable[["RawServer", Peer, int], Awaitable[None]]


class RawServer:
    """Runs `script(server, peer, index)` for each connection (index counts from 0)."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        index = self.connections
        self.connections += 1
        peer = Peer(reader, writer)
        try:
            await self.script(self, peer, index)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def next_request(self, peer: Peer) -> tuple[str, dict[str, str], bytes] | None:
        request = await peer.request()
        if request is not None:
            self.requests.append(request)
        return request

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        async with asyncio.timeout(5):
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()


def response(
    status: str = "200 OK", headers: list[tuple[str, str]] | None = None, body: bytes = b""
) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers or [])]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def with_length(body: bytes, *headers: tuple[str, str], status: str = "200 OK") -> bytes:
    return response(status, [*headers, ("Content-Length", str(len(body)))], body)


def chunked(*chunks: bytes, headers: list[tuple[str, str]] | None = None) -> bytes:
    out = response("200 OK", [*(headers or []), ("Transfer-Encoding", "chunked")])
    for chunk in chunks:
        out += f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    return out + b"0\r\n\r\n"


JSON_OK = with_length(b'{"ok": true}', ("Content-Type", "application/json"))


def serve_each(answer: bytes | Callable[[str], bytes], *, close_after: bool = False) -> Script:
    """A keep-alive script answering every request with `answer` (or answer(request line))."""

    async def script(server: RawServer, peer: Peer, index: int) -> None:
        while (request := await server.next_request(peer)) is not None:
            await peer.send(answer(request[0]) if callable(answer) else answer)
            if close_after:
                return

    return script


Serve = Callable[[Script], Awaitable[RawServer]]


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[Serve]:
    started: list[RawServer] = []

    async def start(script: Script) -> RawServer:
        server = RawServer(script)
        await server.start()
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            await server.close()


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    async with serving() as start:
        yield start


@pytest.fixture
async def task() -> AsyncIterator[HttpTask]:
    http = HttpTask()
    try:
        yield http
    finally:
        await http.close()


def response_of(output: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = output["response"]
    return result


def lean_calls(task: HttpTask) -> int:
    return task._wire.stats.connections


# --- framing and decoding ---------------------------------------------------------------


async def test_chunked_body_split_across_writes(serve: Serve, task: HttpTask) -> None:
    async def script(server: RawServer, peer: Peer, index: int) -> None:
        while await server.next_request(peer) is not None:
            data = chunked(
                b'{"a": ', b"[1, 2", b"]}", headers=[("Content-Type", "application/json")]
            )
            for i in range(0, len(data), 7):  # the parser must cope with any split
                await peer.send(data[i : i + 7])

    server = await serve(script)
    for _ in range(2):
        outcome = await task.execute({"uri": server.url("/c")})
        assert outcome.status == "COMPLETED", outcome.reason
        assert response_of(outcome.output)["body"] == {"a": [1, 2]}
    assert server.connections == 1  # a chunked answer leaves the connection reusable


@pytest.mark.parametrize(
    "coding", ["gzip", "deflate", "raw-deflate", "gzip-chunked", "gzip-until-close"]
)
async def test_compressed_bodies_are_decoded(serve: Serve, task: HttpTask, coding: str) -> None:
    payload = json.dumps({"text": "x" * 5000, "n": list(range(100))}).encode()
    if coding.startswith("gzip"):
        packed, header = gzip.compress(payload), "gzip"
    elif coding == "deflate":
        packed, header = zlib.compress(payload), "deflate"
    else:
        squeeze = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        packed, header = squeeze.compress(payload) + squeeze.flush(), "deflate"
    headers = [("Content-Type", "application/json"), ("Content-Encoding", header)]
    if coding.endswith("chunked"):
        answer = chunked(packed[:100], packed[100:], headers=headers)
    elif coding.endswith("until-close"):
        answer = response("200 OK", headers, packed)
    else:
        answer = with_length(packed, *headers)
    server = await serve(serve_each(answer, close_after=coding.endswith("until-close")))
    outcome = await task.execute({"uri": server.url()})
    assert outcome.status == "COMPLETED", outcome.reason
    assert response_of(outcome.output)["body"] == json.loads(payload)
    assert server.requests[0][1]["accept-encoding"] == "gzip, deflate"


async def test_corrupt_compressed_body_is_a_clear_error(serve: Serve, task: HttpTask) -> None:
    answer = with_length(b"not gzip at all", ("Content-Encoding", "gzip"))
    server = await serve(serve_each(answer))
    outcome = await task.execute({"uri": server.url("/z")})
    assert outcome.status == "FAILED"
    assert outcome.reason == f"Could not decode the response body from {server.url('/z')}"


async def test_body_until_close_without_length(serve: Serve, task: HttpTask) -> None:
    async def script(server: RawServer, peer: Peer, index: int) -> None:
        await server.next_request(peer)
        await peer.send(response("200 OK", [("Content-Type", "text/plain")], b"all of "))
        await peer.send(b"it")

    server = await serve(script)
    for _ in range(2):  # the second call needs a fresh connection
        outcome = await task.execute({"uri": server.url()})
        assert outcome.status == "COMPLETED", outcome.reason
        assert response_of(outcome.output)["body"] == "all of it"
    assert server.connections == 2


async def test_informational_answers_are_skipped(serve: Serve, task: HttpTask) -> None:
    answer = response("100 Continue") + response("103 Early Hints", [("Link", "</a>")]) + JSON_OK
    server = await serve(serve_each(answer))
    outcome = await task.execute({"uri": server.url(), "method": "POST", "body": {"a": 1}})
    assert outcome.status == "COMPLETED", outcome.reason
    result = response_of(outcome.output)
    assert result["body"] == {"ok": True}
    assert "Link" not in result["headers"]


async def test_head_answer_has_no_body_and_keeps_the_connection_in_step(
    serve: Any, task: HttpTask
) -> None:
    def answer(request_line: str) -> bytes:
        if request_line.startswith("HEAD"):
            return response("200 OK", [("Content-Length", "100000"), ("X-Kind", "head")])
        return JSON_OK

    server = await serve(serve_each(answer))
    head = await task.execute({"uri": server.url(), "method": "HEAD"})
    assert head.status == "COMPLETED", head.reason
    assert response_of(head.output)["body"] is None
    assert response_of(head.output)["headers"]["Content-Length"] == ["100000"]
    get = await task.execute({"uri": server.url()})
    assert response_of(get.output)["body"] == {"ok": True}
    assert server.connections == 1


@pytest.mark.parametrize("framing", ["length", "chunked"])
async def test_big_bodies(serve: Serve, framing: str) -> None:
    letters = bytes(b"abcdefgh"[i % 8] for i in range(256))
    data = random.Random(7).randbytes(3_000_000).translate(letters)
    if framing == "length":
        answer = with_length(data, ("Content-Type", "text/plain"))
    else:
        pieces = [data[i : i + 65536] for i in range(0, len(data), 65536)]
        answer = chunked(*pieces, headers=[("Content-Type", "text/plain")])
    server = await serve(serve_each(answer))
    task = HttpTask(max_response_bytes=len(data))
    try:
        outcome = await task.execute({"uri": server.url()})
        assert outcome.status == "COMPLETED", outcome.reason
        assert response_of(outcome.output)["body"] == data.decode()
        small = HttpTask(max_response_bytes=len(data) - 1)
        try:
            too_big = await small.execute({"uri": server.url()})
        finally:
            await small.close()
        assert too_big.reason == f"Response body exceeds the limit of {len(data) - 1} bytes"
        assert response_of(too_big.output)["statusCode"] == 200
        assert "body" not in response_of(too_big.output)
    finally:
        await task.close()


async def test_the_cap_bounds_the_decoded_size(serve: Serve) -> None:
    packed = gzip.compress(b"a" * 1_000_000)  # about 1 KB on the wire
    server = await serve(serve_each(with_length(packed, ("Content-Encoding", "gzip"))))
    task = HttpTask(max_response_bytes=100_000)
    try:
        outcome = await task.execute({"uri": server.url()})
    finally:
        await task.close()
    assert outcome.reason == "Response body exceeds the limit of 100000 bytes"


# --- connections ------------------------------------------------------------------------


async def test_keep_alive_reuses_one_connection(serve: Serve, task: HttpTask) -> None:
    server = await serve(serve_each(JSON_OK))
    for i in range(5):
        method = "POST" if i % 2 else "GET"
        outcome = await task.execute({"uri": server.url(f"/{i}"), "method": method, "body": "x"})
        assert outcome.status == "COMPLETED", outcome.reason
    assert server.connections == 1
    assert lean_calls(task) == 1
    assert [r[0] for r in server.requests] == [
        "GET /0 HTTP/1.1",
        "POST /1 HTTP/1.1",
        "GET /2 HTTP/1.1",
        "POST /3 HTTP/1.1",
        "GET /4 HTTP/1.1",
    ]


async def test_the_request_is_what_httpx_sends(serve: Serve, task: HttpTask) -> None:
    server = await serve(serve_each(JSON_OK))
    uri = server.url("/p?q=1").replace("http://", "http://alice:s3cret@")
    outcome = await task.execute(
        {"uri": uri, "method": "PUT", "body": {"a": 1}, "headers": {"X-Id": 7}}
    )
    assert outcome.status == "COMPLETED", outcome.reason
    line, headers, body = server.requests[0]
    assert line == "PUT /p?q=1 HTTP/1.1"
    assert body == b'{"a":1}'
    assert headers == {
        "host": f"127.0.0.1:{server.port}",
        "accept-encoding": "gzip, deflate",
        "connection": "keep-alive",
        "user-agent": "Baton-HttpTask",
        "x-id": "7",
        "accept": "application/json",
        "content-type": "application/json",
        "content-length": "7",
        "authorization": "Basic YWxpY2U6czNjcmV0",
    }


async def test_server_closing_an_idle_connection(serve: Serve, task: HttpTask) -> None:
    async def script(server: RawServer, peer: Peer, index: int) -> None:
        await server.next_request(peer)
        await peer.send(JSON_OK)
        await asyncio.sleep(0.05)  # then hang up, as an idle timeout would

    server = await serve(script)
    for _ in range(3):
        outcome = await task.execute({"uri": server.url()})
        assert outcome.status == "COMPLETED", outcome.reason
        await asyncio.sleep(0.2)  # the close arrives while the connection is idle
    assert server.connections == 3
    assert task._wire.stats.retries == 0  # seen as closed before use, not after


def stale_after_first(answer: bytes = JSON_OK) -> Script:
    """Connection 0 answers once, then takes the next request and hangs up without a word
    (an idle timeout racing the request); later connections answer normally."""

    async def script(server: RawServer, peer: Peer, index: int) -> None:
        while await server.next_request(peer) is not None:
            if index == 0 and len(server.requests) > 1:
                return
            await peer.send(answer)

    return script


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_an_idempotent_request_is_resent_once_after_a_stale_close(
    serve: Any, task: HttpTask, method: str
) -> None:
    server = await serve(stale_after_first())
    assert (await task.execute({"uri": server.url("/1")})).status == "COMPLETED"
    outcome = await task.execute({"uri": server.url("/2"), "method": method})
    assert outcome.status == "COMPLETED", outcome.reason
    assert [r[0].split()[1] for r in server.requests] == ["/1", "/2", "/2"]
    assert server.connections == 2
    assert task._wire.stats.retries == 1


@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_a_post_is_never_resent(serve: Serve, task: HttpTask, method: str) -> None:
    server = await serve(stale_after_first())
    assert (await task.execute({"uri": server.url("/1")})).status == "COMPLETED"
    outcome = await task.execute({"uri": server.url("/2"), "method": method, "body": {"n": 1}})
    assert outcome.status == "FAILED"
    assert outcome.reason == (
        f"Connection to {server.url('/2')} failed: Server disconnected without sending a response."
    )
    assert [r[0].split()[1] for r in server.requests] == ["/1", "/2"]
    assert task._wire.stats.retries == 0


async def test_a_post_skips_connections_idle_too_long(serve: Serve, task: HttpTask) -> None:
    task._wire.fresh_s = 0.1
    server = await serve(serve_each(JSON_OK))
    assert (await task.execute({"uri": server.url()})).status == "COMPLETED"
    assert (await task.execute({"uri": server.url(), "method": "POST"})).status == "COMPLETED"
    assert server.connections == 1  # idle for well under 0.1 s: reused
    await asyncio.sleep(0.2)
    assert (await task.execute({"uri": server.url(), "method": "POST"})).status == "COMPLETED"
    assert server.connections == 2  # a fresh one, not the one idle for 0.2 s
    assert (await task.execute({"uri": server.url()})).status == "COMPLETED"
    assert server.connections == 2  # a GET may take any live connection


async def test_a_fresh_connection_failing_is_not_retried(serve: Serve, task: HttpTask) -> None:
    async def script(server: RawServer, peer: Peer, index: int) -> None:
        await server.next_request(peer)  # and hang up

    server = await serve(script)
    outcome = await task.execute({"uri": server.url("/x")})
    assert outcome.reason == (
        f"Connection to {server.url('/x')} failed: Server disconnected without sending a response."
    )
    assert server.connections == 1


async def test_connection_close_is_honoured_both_ways(serve: Serve, task: HttpTask) -> None:
    closing = with_length(b"{}", ("Connection", "close"), ("Content-Type", "application/json"))
    server = await serve(serve_each(closing, close_after=True))
    for _ in range(2):
        assert (await task.execute({"uri": server.url()})).status == "COMPLETED"
    assert server.connections == 2

    polite = await serve(serve_each(JSON_OK))
    for _ in range(2):
        outcome = await task.execute({"uri": polite.url(), "headers": {"Connection": "close"}})
        assert outcome.status == "COMPLETED", outcome.reason
    assert polite.connections == 2
    assert polite.requests[0][1]["connection"] == "close"


async def test_http_1_0_answers_are_not_kept_alive(serve: Serve, task: HttpTask) -> None:
    answer = JSON_OK.replace(b"HTTP/1.1", b"HTTP/1.0", 1)
    server = await serve(serve_each(answer))
    for _ in range(2):
        assert (await task.execute({"uri": server.url()})).status == "COMPLETED"
    assert server.connections == 2


async def test_slots_bound_connections_under_load(serve: Serve) -> None:
    server = await serve(serve_each(JSON_OK))
    task = HttpTask(slots=4)
    try:
        async with asyncio.timeout(20):
            outcomes = await asyncio.gather(
                *(task.execute({"uri": server.url(f"/{i}")}) for i in range(40))
            )
        assert {o.status for o in outcomes} == {"COMPLETED"}
        assert server.connections <= 4
    finally:
        await task.close()


# --- timeouts and errors ----------------------------------------------------------------


async def test_read_timeout(serve: Serve, task: HttpTask) -> None:
    async def script(server: RawServer, peer: Peer, index: int) -> None:
        await server.next_request(peer)
        await asyncio.sleep(5)

    server = await serve(script)
    started = time.monotonic()
    outcome = await task.execute({"uri": server.url("/slow"), "readTimeOut": 200})
    assert time.monotonic() - started < 2
    assert outcome.reason == f"Read timed out after 200 ms waiting for {server.url('/slow')}"
    assert response_of(outcome.output) == {"error": outcome.reason}


async def test_the_read_timeout_is_per_read(serve: Serve, task: HttpTask) -> None:
    async def script(server: RawServer, peer: Peer, index: int) -> None:
        await server.next_request(peer)
        data = with_length(b'{"slow": "but steady"}', ("Content-Type", "application/json"))
        for i in range(0, len(data), 12):
            await asyncio.sleep(0.1)
            await peer.send(data[i : i + 12])

    server = await serve(script)
    outcome = await task.execute({"uri": server.url(), "readTimeOut": 300})
    assert outcome.status == "COMPLETED", outcome.reason  # ~0.8 s in all, 0.1 s per read


async def test_connect_timeout(task: HttpTask) -> None:
    # A listener that never accepts, with its one-slot backlog taken: SYNs go unanswered.
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler.connect(("127.0.0.1", port))
        uri = f"http://127.0.0.1:{port}/x"
        started = time.monotonic()
        outcome = await task.execute({"uri": uri, "connectionTimeOut": 200})
        assert time.monotonic() - started < 2
    assert outcome.reason == f"Connect timed out after 200 ms to {uri}"


async def test_write_timeout(serve: Serve, task: HttpTask) -> None:
    async def script(server: RawServer, peer: Peer, index: int) -> None:
        await asyncio.sleep(5)  # never reads: the request cannot be sent

    server = await serve(script)
    body = "x" * 64_000_000  # more than the socket buffers on both sides hold
    started = time.monotonic()
    outcome = await task.execute(
        {"uri": server.url("/w"), "method": "POST", "body": body, "readTimeOut": 300}
    )
    assert time.monotonic() - started < 5
    assert outcome.reason == f"Write timed out after 300 ms sending to {server.url('/w')}"


async def test_unknown_host(task: HttpTask) -> None:
    outcome = await task.execute({"uri": "http://no-such-host.invalid/x"})
    assert outcome.reason is not None
    assert outcome.reason.startswith("Unknown host no-such-host.invalid (")
    assert outcome.reason.endswith("): http://no-such-host.invalid/x")


@pytest.mark.parametrize(
    "answer",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
    ],
    ids=["no-status-line", "bad-status", "bad-length", "bad-chunk", "protocol-switch"],
)
async def test_malformed_answers_fail_clearly(serve: Serve, task: HttpTask, answer: bytes) -> None:
    server = await serve(serve_each(answer))
    outcome = await task.execute({"uri": server.url("/m")})
    assert outcome.status == "FAILED"
    assert outcome.reason is not None
    assert outcome.reason.startswith(
        f"Connection to {server.url('/m')} failed: Malformed HTTP response ("
    ), outcome.reason
    # The broken connection is not reused.
    assert (await task.execute({"uri": server.url("/m")})).status == "FAILED"
    assert server.connections == 2


@pytest.mark.parametrize("ended", [True, False], ids=["complete", "endless"])
async def test_headers_over_100_kib_are_refused(serve: Serve, task: HttpTask, ended: bool) -> None:
    answer = response("200 OK", [(f"X-{i}", "v" * 1000) for i in range(120)])
    if not ended:
        answer = answer[:-4] + b"\r\nX-More: " + b"m" * 20_000  # and never a blank line
    server = await serve(serve_each(answer))
    outcome = await task.execute({"uri": server.url()})
    assert outcome.reason == (
        f"Connection to {server.url()} failed: Malformed HTTP response (headers too large)"
    )


async def test_peer_closing_mid_body(serve: Serve, task: HttpTask) -> None:
    async def script(server: RawServer, peer: Peer, index: int) -> None:
        await server.next_request(peer)
        await peer.send(response("200 OK", [("Content-Length", "100")], b"only some"))

    server = await serve(script)
    outcome = await task.execute({"uri": server.url()})
    assert outcome.reason == (
        f"Connection to {server.url()} failed: "
        "peer closed connection without sending complete message body"
    )


async def test_a_deadline_mid_exchange_retires_the_connection(serve: Serve, task: HttpTask) -> None:
    async def script(server: RawServer, peer: Peer, index: int) -> None:
        while (request := await server.next_request(peer)) is not None:
            if request[0].startswith("GET /slow"):
                await asyncio.sleep(0.5)
            await peer.send(JSON_OK)

    server = await serve(script)
    outcome = await task.execute({"uri": server.url("/slow")}, timeout_hint_s=0.1)
    assert outcome.reason is not None
    assert "did not complete within 0.1 s" in outcome.reason
    # The late answer must not be read as the answer to the next request.
    again = await task.execute({"uri": server.url("/fast")})
    assert again.status == "COMPLETED", again.reason
    assert server.connections == 2


# --- redirects --------------------------------------------------------------------------


async def test_redirects_on_the_lean_path(serve: Serve, task: HttpTask) -> None:
    other = await serve(serve_each(lambda line: with_length(line.encode())))

    def answer(request_line: str) -> bytes:
        path = request_line.split()[1]
        if path == "/hop":
            return with_length(b"moved", ("Location", "/json"), status="302 Found")
        if path == "/away":
            return with_length(b"", ("Location", other.url("/there")), status="307 Temp")
        if path == "/loop":
            return with_length(b"", ("Location", "/loop"), status="301 Moved")
        return JSON_OK

    server = await serve(serve_each(answer))
    hop = await task.execute({"uri": server.url("/hop"), "headers": {"Cookie": "c=1"}})
    assert response_of(hop.output)["body"] == {"ok": True}
    assert "cookie" not in server.requests[-1][1]  # as httpx: not carried over a redirect

    away = await task.execute({"uri": server.url("/away"), "headers": {"Authorization": "t"}})
    assert away.status == "COMPLETED", away.reason
    assert "authorization" not in other.requests[-1][1]  # never to another origin
    assert other.requests[-1][1]["host"] == f"127.0.0.1:{other.port}"

    post = await task.execute({"uri": server.url("/hop"), "method": "POST"})
    assert post.status == "FAILED"
    assert response_of(post.output)["statusCode"] == 302

    loop = await task.execute({"uri": server.url("/loop")})
    assert loop.reason == f"Too many redirects (more than 5) from {server.url('/loop')}"
    assert sum(1 for r in server.requests if r[0].startswith("GET /loop")) == 6

    bad = await serve(serve_each(with_length(b"", ("Location", "ftp://x/y"), status="302 Found")))
    handed_over = await task.execute({"uri": bad.url()})  # httpx takes the next hop
    assert handed_over.reason == f"HTTP request to {bad.url()} failed: UnsupportedProtocol"


# --- the same output on both paths ------------------------------------------------------

CANNED = {
    "json": JSON_OK,
    "text-latin1": with_length(
        "café".encode("latin-1"), ("Content-Type", "text/plain; charset=latin-1")
    ),
    "unknown-charset": with_length(b"abc", ("Content-Type", "text/plain; charset=nope")),
    "no-type-json": with_length(b'[1, {"a": null}]'),
    "no-type-text": with_length(b"plain"),
    "repeated-headers": with_length(b"x", ("X-M", "a"), ("x-m", "b"), ("X-Trail", "v  ")),
    "utf8-header": with_length(b"x", ("X-U", "é".encode().decode("latin-1"))),
    "latin1-header": with_length(b"x", ("X-L", "\xe9\xff")),
    "no-content": response("204 No Content"),
    "not-found": with_length(
        b"nothing here", ("Content-Type", "text/plain"), status="404 Not Found"
    ),
    "server-error": with_length(
        b'{"e": "' + b"x" * 600 + b'"}', ("Content-Type", "application/json"), status="500 Oops"
    ),
    "custom-status": with_length(b"", status="299 Quite Fine"),
    "no-reason": with_length(b"{}", status="200 "),
    "nan": with_length(b"[NaN]", ("Content-Type", "application/json")),
    "bom": with_length(b"\xef\xbb\xbf{}", ("Content-Type", "application/json")),
    "gzip": with_length(gzip.compress(b'{"z": 1}'), ("Content-Encoding", "gzip")),
    "gzip-twice": with_length(
        gzip.compress(gzip.compress(b"twice")), ("Content-Encoding", "gzip, gzip")
    ),
    "unknown-coding": with_length(b"as is", ("Content-Encoding", "br")),
    "chunked": chunked(b"a", b"b", headers=[("Content-Type", "text/plain")]),
    "early-hint": response("103 Early Hints") + JSON_OK,
    "bare-lf": b"HTTP/1.1 200 OK\nContent-Length: 2\nContent-Type: application/json\n\n{}",
    "length-and-chunked": response(
        "200 OK", [("Content-Length", "99"), ("Transfer-Encoding", "chunked")]
    )
    + b"2\r\nok\r\n0\r\n\r\n",
    "redirect-post": with_length(b"see", ("Location", "/x"), status="303 See Other"),
}


_HEAD_END = re.compile(rb"\r?\n\r?\n")


def without_bodies(answer: bytes) -> bytes:
    """`answer` as a correct server sends it to a HEAD request: header blocks only."""
    out, pos = b"", 0
    while (end := _HEAD_END.search(answer, pos)) is not None:
        block = answer[pos : end.end()]
        out += block
        if not re.match(rb"HTTP/1\.[01] 1[0-9][0-9]", block):
            break  # the final answer's head
        pos = end.end()
    return out


def force_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_task, "_plain_target", lambda uri: None)
    monkeypatch.setattr(http_task, "_lean_target", lambda url: None)


@pytest.mark.parametrize("name", list(CANNED))
@pytest.mark.parametrize("method", ["GET", "POST", "HEAD"])
async def test_both_paths_give_the_same_output(
    serve: Any, monkeypatch: pytest.MonkeyPatch, name: str, method: str
) -> None:
    canned = CANNED[name]
    server = await serve(
        serve_each(lambda line: without_bodies(canned) if line.startswith("HEAD") else canned)
    )
    task_input: dict[str, Any] = {"uri": server.url("/same"), "method": method}
    if method == "POST":
        task_input["body"] = {"a": 1}
    outcomes = []
    for lean in (True, False):
        task = HttpTask(max_response_bytes=10_000)
        try:
            with monkeypatch.context() as patch:
                if not lean:
                    force_httpx(patch)
                outcomes.append(await task.execute(task_input))
            assert (task._wire.stats.connections > 0) == lean
        finally:
            await task.close()
    lean_outcome, httpx_outcome = outcomes
    assert json.dumps(lean_outcome.output) == json.dumps(httpx_outcome.output)
    assert lean_outcome.reason == httpx_outcome.reason
    assert lean_outcome.status == httpx_outcome.status


async def test_requests_httpx_must_send_stay_on_httpx(serve: Serve, task: HttpTask) -> None:
    server = await serve(serve_each(JSON_OK))
    for headers in ({"Content-Length": "3"}, {"X-A": " padded "}, {"Upgrade": "x"}):
        await task.execute(
            {"uri": server.url(), "method": "POST", "body": "abc", "headers": headers}
        )
    assert lean_calls(task) == 0
    await task.execute({"uri": server.url(), "headers": {"X-A": "in side"}})
    assert lean_calls(task) == 1


# --- URI parsing ------------------------------------------------------------------------

_URI_PIECES = [
    "a",
    "Z",
    "0",
    "9",
    "-",
    ".",
    "_",
    "~",
    "!",
    "$",
    "&",
    "'",
    "(",
    ")",
    "*",
    "+",
    ",",
    ";",
    "=",
    ":",
    "@",
    "/",
    "%",
    "%41",
    "%zz",
    "?",
    "..",
    "./",
    "/./",
    "/../",
    " ",
    "é",
    "#",
    "[",
    "{",
    "|",
    "`",
    '"',
    "<",
    "\\",
    "^",
]


def _random_uri(rng: random.Random) -> str:
    host = rng.choice(
        [
            "h",
            "example.com",
            "127.0.0.1",
            "1.2.3.400",
            "Host",
            "a-b.c",
            "[::1]",
            "u:p@h",
            "01.2.3.4",
        ]
    )
    port = rng.choice(["", ":80", ":080", ":8080", ":0", ":65535", ":65536", ":99999", ":x"])
    pieces = _URI_PIECES if rng.random() < 0.5 else _URI_PIECES[:22]  # [:22]: never re-encoded
    path = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
    if path and path[0] not in "/?#":
        path = "/" + path
    return f"http://{host}{port}{path}"


def test_the_plain_uri_fast_path_matches_httpx() -> None:
    rng = random.Random(1234)
    fast = 0
    for _ in range(20_000):
        uri = _random_uri(rng)
        target = http_task._plain_target(uri)
        if target is None:
            continue
        fast += 1
        url = httpx.URL(uri)  # the fast path only takes what httpx.URL accepts
        assert target == http_task._lean_target(url), uri
    assert fast > 2000  # the comparison covered many URIs


# --- the same behaviours on uvloop (what uvicorn runs the server on) ---------------------

Scenario = Callable[[Serve, HttpTask], Awaitable[None]]
ON_UVLOOP: dict[str, Scenario] = {
    "chunked": test_chunked_body_split_across_writes,
    "gzip": functools.partial(test_compressed_bodies_are_decoded, coding="gzip-chunked"),
    "until-close": test_body_until_close_without_length,
    "informational": test_informational_answers_are_skipped,
    "head": test_head_answer_has_no_body_and_keeps_the_connection_in_step,
    "keep-alive": test_keep_alive_reuses_one_connection,
    "request-bytes": test_the_request_is_what_httpx_sends,
    "idle-close": test_server_closing_an_idle_connection,
    "stale-get": functools.partial(
        test_an_idempotent_request_is_resent_once_after_a_stale_close, method="GET"
    ),
    "stale-post": functools.partial(test_a_post_is_never_resent, method="POST"),
    "connection-close": test_connection_close_is_honoured_both_ways,
    "read-timeout": test_read_timeout,
    "per-read-timeout": test_the_read_timeout_is_per_read,
    "connect-timeout": lambda serve, task: test_connect_timeout(task),
    "write-timeout": test_write_timeout,
    "malformed": functools.partial(test_malformed_answers_fail_clearly, answer=b"garbage\r\n\r\n"),
    "headers-too-large": functools.partial(test_headers_over_100_kib_are_refused, ended=False),
    "closed-mid-body": test_peer_closing_mid_body,
    "deadline": test_a_deadline_mid_exchange_retires_the_connection,
    "redirects": test_redirects_on_the_lean_path,
}


@pytest.mark.parametrize("name", list(ON_UVLOOP))
def test_on_uvloop(name: str) -> None:
    async def run() -> None:
        async with serving() as serve:
            task = HttpTask()
            try:
                await ON_UVLOOP[name](serve, task)
            finally:
                await task.close()

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(run(), 20))
    finally:
        loop.close()


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "httpx"])
async def test_cookies_are_not_kept_between_calls(
    serve: Serve, monkeypatch: pytest.MonkeyPatch, lean: bool
) -> None:
    if not lean:
        force_httpx(monkeypatch)
    answer = with_length(b"{}", ("Set-Cookie", "session=s3cret; Path=/"))
    server = await serve(serve_each(answer))
    task = HttpTask(slots=1)  # one client on the httpx path: it would hold the cookie
    try:
        for _ in range(2):
            assert (await task.execute({"uri": server.url()})).status == "COMPLETED"
        await task.execute({"uri": server.url(), "headers": {"Cookie": "mine=1"}})
    finally:
        await task.close()
    assert [r[1].get("cookie") for r in server.requests] == [None, None, "mine=1"]
    assert (task._wire.stats.connections > 0) == lean
