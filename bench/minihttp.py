"""A minimal HTTP/1.1 server on asyncio streams (keep-alive, Content-Length bodies only).

The stub and the limit use it instead of a framework so that neither adds framework cost to
what it measures: it is the least a process can do to answer HTTP.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

# (method, path, query, body) -> (status, JSON-able body)
Handler = Callable[[str, str, dict[str, str], bytes], Awaitable[tuple[int, Any]]]

_REASONS = {200: b"OK", 404: b"Not Found", 400: b"Bad Request", 500: b"Internal Server Error"}


async def _serve_connection(
    handler: Handler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) < 2:
                return
            length = 0
            for line in lines[1:]:
                if line[:15].lower() == "content-length:":
                    length = int(line.split(":", 1)[1])
            body = await reader.readexactly(length) if length else b""
            target = urlsplit(parts[1])
            query = {k: v[0] for k, v in parse_qs(target.query).items()}
            try:
                status, payload = await handler(parts[0], target.path, query, body)
            except Exception as exc:
                status, payload = 500, {"error": repr(exc)}
            data = json.dumps(payload).encode()
            writer.write(
                b"HTTP/1.1 "
                + str(status).encode()
                + b" "
                + _REASONS.get(status, b"OK")
                + b"\r\ncontent-type: application/json\r\ncontent-length: "
                + str(len(data)).encode()
                + b"\r\n\r\n"
                + data
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(handler: Handler, port: int) -> asyncio.Server:
    """Listen on 127.0.0.1:port (0: any free port) and answer with `handler`."""

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve_connection(handler, reader, writer)

    return await asyncio.start_server(on_connect, "127.0.0.1", port, backlog=1024)


def bound_port(server: asyncio.Server) -> int:
    port: int = server.sockets[0].getsockname()[1]
    return port


class Connection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1, one request at a time.

    The drivers use it instead of httpx: at 64 concurrent requests httpx spends milliseconds
    of CPU per call, and the driver shares the machine with the system it measures."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self._writer is None:
                self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
            try:
                return await self._roundtrip(method, target, body, headers or {})
            except (asyncio.IncompleteReadError, ConnectionError):
                # The server closed an idle keep-alive connection: reconnect once.
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _roundtrip(
        self, method: str, target: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        assert self._reader is not None and self._writer is not None
        head = f"{method} {target} HTTP/1.1\r\nhost: 127.0.0.1:{self.port}\r\n"
        head += f"content-length: {len(body)}\r\n"
        if body:
            head += "content-type: application/json\r\n"
        for k, v in headers.items():
            head += f"{k}: {v}\r\n"
        self._writer.write(head.encode("latin-1") + b"\r\n" + body)
        raw = await self._reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        length, chunked, close = 0, False, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        if chunked:
            data = b""
            while True:
                size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self._reader.readexactly(size + 2)
                if size == 0:
                    break
                data += chunk[:-2]
        else:
            data = await self._reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, data

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


class ConnectionPool:
    """`size` connections handed out one request at a time."""

    def __init__(self, port: int, size: int) -> None:
        self._free: asyncio.Queue[Connection] = asyncio.Queue()
        self._all = [Connection(port) for _ in range(size)]
        for c in self._all:
            self._free.put_nowait(c)

    async def request(
        self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        conn = await self._free.get()
        try:
            return await conn.request(method, target, body, headers)
        finally:
            self._free.put_nowait(conn)

    def close(self) -> None:
        for c in self._all:
            c.close()
