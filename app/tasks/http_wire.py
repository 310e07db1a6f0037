"""A lean HTTP/1.1 client for the HTTP task's plain `http://` calls.

httpx spends most of an HTTP task's CPU on layers the task does not need (request and header
models, cookies, the httpcore pool state machine, h11's pure-Python parser). This client does
one thing: send a request the caller has already built and validated, on a keep-alive
connection, and parse the answer with llhttp (`httptools`). The HTTP task keeps httpx for
`https://` and for the few requests this client does not take (see `app.tasks.http`).

- One pool of idle connections per (host, port), most recently used first. A connection
  serves one request at a time; connections idle for more than `keepalive_s` are closed. The
  caller bounds concurrency (the task's slots), so at most that many connections are busy.
- Response framing: Content-Length, chunked, or until the server closes; no body for HEAD,
  1xx, 204 and 304. Informational (1xx) answers are skipped. `Content-Encoding` gzip and
  deflate are decoded as httpx decodes them; other codings are left as they are.
- A connection is reused only if the response was complete, both sides allow keep-alive and
  nothing unexpected arrived. Data or EOF on an idle connection retires it.
- Stale connections: a server may close an idle connection just as a request goes out on it.
  When a reused connection ends before any byte of the response arrived, an idempotent
  request (RFC 9110 9.2.2: not POST or PATCH) is sent once more on a fresh connection. A POST
  or PATCH is never resent, since its silence does not prove the server did not act on it;
  instead it only reuses connections that have been idle for under `fresh_s`, so it does not
  meet a server's idle timeout (typically 2 s or more).
- Timeouts: connect (resolution included), write (no progress sending the request for the
  read timeout) and read (no byte received for the read timeout), like httpx's.
- Size caps: response headers at 100 KiB (as httpcore), the decoded body at the caller's
  `max_bytes` (a larger declared Content-Length fails before the body is read).
"""

from __future__ import annotations

import asyncio
import socket
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import cast

import httptools

MAX_HEADER_BYTES = 100 * 1024
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
# Methods a client may resend after a connection failed without an answer (RFC 9110 9.2.2).
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})

_EMPTY_BODY_STATUS = frozenset({204, 304})


@dataclass(slots=True)
class Response:
    """What the HTTP task needs of an answer; also built from httpx responses."""

    status: int
    reason: str  # the server's phrase, ASCII (as httpx reports it)
    headers: list[tuple[bytes, bytes]]  # raw names and values, in order
    body: bytes = b""


# --- errors -----------------------------------------------------------------------------


class WireError(Exception):
    """A failed call; subclasses say how. Messages never quote the request."""


class ConnectTimeout(WireError):
    pass


class ReadTimeout(WireError):
    pass


class WriteTimeout(WireError):
    pass


class ConnectFailed(WireError):
    """Could not open a connection; `cause` is the OSError (refused, unknown host, ...)."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(str(cause) or type(cause).__name__)
        self.cause = cause


class ProtocolFailure(WireError):
    """The connection broke or the server's answer was not valid HTTP/1.1."""


class Disconnected(ProtocolFailure):
    """The connection ended before any byte of the response arrived."""


class DecodeFailure(WireError):
    """The body's Content-Encoding could not be decoded."""


class TooLarge(WireError):
    """The body exceeds `max_bytes`; `head` is the response without its body."""

    def __init__(self, head: Response) -> None:
        super().__init__("response body too large")
        self.head = head


# --- content decoding (as httpx's decoders) ------------------------------------------------


class _Gzip:
    __slots__ = ("_z",)

    def __init__(self) -> None:
        self._z = zlib.decompressobj(zlib.MAX_WBITS | 16)

    def decode(self, data: bytes) -> bytes:
        return self._z.decompress(data)

    def flush(self) -> bytes:
        return self._z.flush()


class _Deflate:
    """zlib-wrapped deflate, or raw deflate if the first chunk says so (as httpx)."""

    __slots__ = ("_first", "_z")

    def __init__(self) -> None:
        self._first = True
        self._z = zlib.decompressobj()

    def decode(self, data: bytes) -> bytes:
        first, self._first = self._first, False
        try:
            return self._z.decompress(data)
        except zlib.error:
            if not first:
                raise
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)
            return self._z.decompress(data)

    def flush(self) -> bytes:
        return self._z.flush()


class _Chain:
    """Several codings, undone in reverse order of application (as httpx's MultiDecoder)."""

    __slots__ = ("_children",)

    def __init__(self, children: list[_Gzip | _Deflate]) -> None:
        self._children = list(reversed(children))

    def decode(self, data: bytes) -> bytes:
        for child in self._children:
            data = child.decode(data)
        return data

    def flush(self) -> bytes:
        data = b""
        for child in self._children:
            data = child.decode(data) + child.flush()
        return data


_Decoder = _Gzip | _Deflate | _Chain


def _decoder_for(values: list[bytes]) -> _Decoder | None:
    """The decoder for the Content-Encoding header values; None for identity."""
    children: list[_Gzip | _Deflate] = []
    for value in values:
        for token in value.split(b","):
            token = token.strip().lower()
            if token == b"gzip":
                children.append(_Gzip())
            elif token == b"deflate":
                children.append(_Deflate())
            # identity and unknown codings: left as they are (as httpx)
    if not children:
        return None
    if len(children) == 1:
        return children[0]
    return _Chain(children)


def _new_parser(protocol: _Conn) -> httptools.HttpResponseParser:
    parser = httptools.HttpResponseParser(protocol)
    # Accept what h11 (httpx) accepts: bare LF line ends, and Transfer-Encoding: chunked next
    # to a Content-Length (chunked wins). Both matter to proxies, not to a client.
    parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True, lenient_chunked_length=True)
    return parser


# --- one connection -----------------------------------------------------------------------


class _Conn(asyncio.Protocol):
    """One HTTP/1.1 connection; `exchange` runs one request on it at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, key: tuple[str, int]) -> None:
        self.loop = loop
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.parser = _new_parser(self)
        self.lost = False  # EOF, error or closed: never use again
        self.idle_since = 0.0
        self.used = False  # has served a request (a failure on it may be a stale close)
        # Per exchange:
        self.fut: asyncio.Future[Response] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.read_s = 0.0
        self.last_rx = 0.0
        self.write_left = 0  # bytes still buffered for sending, at the last timer check
        self.head_only = False
        self.discard_redirect = False
        self.max_bytes = 0
        self.received = 0
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.informational = False
        self.until_close = False
        self.discard = False
        self.decoder: _Decoder | None = None
        self.body: list[bytes] = []
        self.body_len = 0
        self.keep_alive = False
        self.done = False
        self.broken = False  # unexpected bytes: do not reuse
        self.parser_dirty = False  # the parser expects a body that will not come (HEAD)

    # --- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP transport; uvloop's do not subclass asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.fut is None or self.done:
            # Nothing was asked: the connection is out of step.
            self.broken = True
            self.close()
            return
        self.last_rx = self.loop.time()
        self.received += len(data)
        try:
            self.parser.feed_data(data)
            if not self.headers_done and self.received > MAX_HEADER_BYTES:
                self._fail(ProtocolFailure("Malformed HTTP response (headers too large)"))
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, WireError):
                self._fail(cause)
            else:
                self._fail(ProtocolFailure(f"Malformed HTTP response ({cause or exc})"))
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolFailure("Malformed HTTP response (unexpected protocol switch)"))
        except httptools.HttpParserError as exc:
            self._fail(ProtocolFailure(f"Malformed HTTP response ({exc})"))

    def eof_received(self) -> bool:
        self._ended(None)
        return False  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended(exc)

    def resume_writing(self) -> None:
        # Most of the request has left: the read timeout counts from here at the earliest.
        if self.fut is not None and not self.done:
            self.last_rx = max(self.last_rx, self.loop.time())

    def _ended(self, exc: Exception | None) -> None:
        self.lost = True
        if self.fut is None or self.done:
            return
        if exc is None and self.headers_done and self.until_close and not self.informational:
            try:
                self._flush_decoder()
            except WireError as failure:
                self._fail(failure)
                return
            self._complete(keep_alive=False)
            return
        if self.received == 0:
            self._fail(Disconnected("Server disconnected without sending a response."))
        elif exc is not None:
            self._fail(ProtocolFailure(str(exc) or type(exc).__name__))
        else:
            self._fail(
                ProtocolFailure("peer closed connection without sending complete message body")
            )

    # --- httptools callbacks

    def on_message_begin(self) -> None:
        if self.done:
            self.broken = True

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp drops leading whitespace only; h11 (httpx) drops trailing whitespace too.
        self.headers.append((name, value.rstrip(b" \t")))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:
            if status == 101:
                raise ProtocolFailure("Malformed HTTP response (unexpected protocol switch)")
            # 1xx: skip it, the final answer follows.
            self.informational = True
            self.reason = b""
            self.headers = []
            return
        self.status = status
        self.headers_done = True
        if self.received > MAX_HEADER_BYTES:
            size = sum(len(name) + len(value) + 4 for name, value in self.headers)
            if size > MAX_HEADER_BYTES:
                raise ProtocolFailure("Malformed HTTP response (headers too large)")
        length: bytes | None = None
        chunked = False
        encodings: list[bytes] = []
        location = False
        for name, value in self.headers:
            if len(name) in (8, 14, 16, 17):
                lower = name.lower()
                if lower == b"content-length":
                    length = value if length is None else b"x"  # repeated: not a plain number
                elif lower == b"transfer-encoding":
                    chunked = value.rstrip().lower().endswith(b"chunked")
                elif lower == b"content-encoding":
                    encodings.append(value)
                elif lower == b"location":
                    location = True
        if self.discard_redirect and status in REDIRECT_CODES and location:
            self.discard = True  # a redirect that will be followed: its body does not matter
        elif (
            not self.head_only
            and length is not None
            and length.isdigit()
            and int(length) > self.max_bytes
        ):
            raise TooLarge(self._head())
        self.decoder = _decoder_for(encodings) if encodings and not self.discard else None
        no_body = self.head_only or status in _EMPTY_BODY_STATUS
        self.until_close = not no_body and length is None and not chunked
        if self.head_only:
            # llhttp does not know this answered a HEAD: it would wait for the body.
            self.parser_dirty = True
            self._complete(keep_alive=self.parser.should_keep_alive())

    def on_body(self, data: bytes) -> None:
        if self.done or self.discard:
            if self.done:
                self.broken = True  # a body after a HEAD answer
            return
        if self.decoder is not None:
            try:
                data = self.decoder.decode(data)
            except zlib.error:
                raise DecodeFailure("Could not decode the response body") from None
        self.body_len += len(data)
        if self.body_len > self.max_bytes:
            raise TooLarge(self._head())
        self.body.append(data)

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            return
        if self.done:
            return
        self._flush_decoder()
        self._complete(keep_alive=self.parser.should_keep_alive())

    def _flush_decoder(self) -> None:
        if self.decoder is None:
            return
        try:
            tail = self.decoder.flush()
        except zlib.error:
            raise DecodeFailure("Could not decode the response body") from None
        if tail:
            self.body_len += len(tail)
            if self.body_len > self.max_bytes:
                raise TooLarge(self._head())
            self.body.append(tail)

    # --- exchange

    def _head(self) -> Response:
        return Response(self.status, self.reason.decode("ascii", "ignore"), self.headers)

    def _complete(self, *, keep_alive: bool) -> None:
        fut = self.fut
        self.done = True
        self.keep_alive = keep_alive
        if fut is not None and not fut.done():
            body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
            fut.set_result(
                Response(self.status, self.reason.decode("ascii", "ignore"), self.headers, body)
            )

    def _fail(self, exc: WireError) -> None:
        fut = self.fut
        self.done = True
        self.keep_alive = False
        self.close()
        if fut is not None and not fut.done():
            fut.set_exception(exc)

    def _on_timer(self) -> None:
        self.timer = None
        if self.fut is None or self.done:
            return
        transport = self.transport
        now = self.loop.time()
        if transport is not None and self.received == 0:
            left = transport.get_write_buffer_size()
            if left:
                # Still sending the request: fail only if nothing left since the last check.
                if self.write_left and left >= self.write_left:
                    self._fail(WriteTimeout("write timed out"))
                else:
                    self.write_left = left
                    self.timer = self.loop.call_at(now + self.read_s, self._on_timer)
                return
            if self.write_left:
                # Sent since the last check (resume_writing may not have fired).
                self.write_left = 0
                self.last_rx = max(self.last_rx, now - self.read_s / 2)
        deadline = self.last_rx + self.read_s
        if now >= deadline:
            self._fail(ReadTimeout("read timed out"))
        else:
            self.timer = self.loop.call_at(deadline, self._on_timer)

    async def exchange(
        self,
        payload: bytes,
        *,
        head_only: bool,
        discard_redirect: bool,
        max_bytes: int,
        read_s: float,
    ) -> Response:
        transport = self.transport
        if transport is None or self.lost or transport.is_closing():
            raise Disconnected("Server disconnected without sending a response.")
        if self.parser_dirty:
            self.parser = _new_parser(self)
            self.parser_dirty = False
        loop = self.loop
        fut: asyncio.Future[Response] = loop.create_future()
        self.fut = fut
        self.head_only = head_only
        self.discard_redirect = discard_redirect
        self.max_bytes = max_bytes
        self.read_s = read_s
        self.received = 0
        self.status = 0
        self.reason = b""
        self.headers = []
        self.headers_done = self.informational = self.until_close = self.discard = False
        self.decoder = None
        self.body = []
        self.body_len = 0
        self.done = self.keep_alive = False
        self.write_left = 0
        self.used = True
        transport.write(payload)
        self.last_rx = now = loop.time()
        self.timer = loop.call_at(now + read_s, self._on_timer)
        try:
            return await fut
        except BaseException:
            self.close()  # cancelled or failed mid-exchange: the stream is out of step
            raise
        finally:
            self.fut = None
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None

    def reusable(self) -> bool:
        transport = self.transport
        return (
            self.keep_alive
            and not self.broken
            and not self.lost
            and transport is not None
            and not transport.is_closing()
            and not transport.get_write_buffer_size()
        )

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()


# --- the pool -----------------------------------------------------------------------------


@dataclass
class _Stats:
    connections: int = 0  # opened so far
    retries: int = 0  # stale-connection resends


@dataclass
class WirePool:
    """Keep-alive connections per (host, port). Bound concurrency outside; `close()` at the end."""

    max_idle: int = 256
    keepalive_s: float = 5.0  # as httpx's default keep-alive expiry
    fresh_s: float = 1.0  # POST / PATCH only reuse connections idle for less than this
    stats: _Stats = field(default_factory=_Stats)
    _idle: dict[tuple[str, int], deque[_Conn]] = field(default_factory=dict)
    _idle_count: int = 0
    _swept: float = 0.0
    _closed: bool = False

    async def request(
        self,
        host: str,
        port: int,
        payload: bytes,
        *,
        method: str,
        keep_alive: bool,
        follow_redirects: bool,
        connect_s: float,
        read_s: float,
        max_bytes: int,
    ) -> Response:
        """Send `payload` (a complete HTTP/1.1 request) and return the answer, body read.

        `keep_alive=False` (the request says `Connection: close`) retires the connection
        after. With `follow_redirects`, the body of a redirect answer is not kept."""
        key = (host, port)
        idempotent = method in IDEMPOTENT
        for attempt in (1, 2):
            conn = self._take(key, idempotent)
            if conn is None:
                conn = await self._connect(key, connect_s)
            reused = conn.used
            try:
                response = await conn.exchange(
                    payload,
                    head_only=method == "HEAD",
                    discard_redirect=follow_redirects,
                    max_bytes=max_bytes,
                    read_s=read_s,
                )
            except Disconnected:
                if reused and idempotent and attempt == 1:
                    self.stats.retries += 1
                    continue  # a stale keep-alive connection: once more on a fresh one
                raise
            if keep_alive and conn.reusable():
                self._put(conn)
            else:
                conn.close()
            return response
        raise AssertionError("unreachable")

    def _take(self, key: tuple[str, int], idempotent: bool) -> _Conn | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            conn = idle[-1]
            age = now - conn.idle_since
            if conn.lost or age > self.keepalive_s:
                # The newest is expired or gone: retire what is gone and everything older.
                idle.pop()
                self._idle_count -= 1
                conn.close()
                if age > self.keepalive_s:
                    while idle:
                        idle.pop().close()
                        self._idle_count -= 1
                continue
            if not idempotent and age >= self.fresh_s:
                return None
            idle.pop()
            self._idle_count -= 1
            return conn
        return None

    def _put(self, conn: _Conn) -> None:
        now = time.monotonic()
        if now - self._swept > self.keepalive_s or self._idle_count >= self.max_idle:
            self._sweep(now)
        if self._closed or self._idle_count >= self.max_idle:
            conn.close()
            return
        conn.idle_since = now
        idle = self._idle.get(conn.key)
        if idle is None:
            idle = self._idle[conn.key] = deque()
        idle.append(conn)
        self._idle_count += 1

    def _sweep(self, now: float) -> None:
        """Close expired and dead idle connections (of hosts no longer called too)."""
        self._swept = now
        for key in list(self._idle):
            idle = self._idle[key]
            keep = deque(c for c in idle if not c.lost and now - c.idle_since <= self.keepalive_s)
            for conn in idle:
                if conn not in keep:
                    conn.close()
            self._idle_count -= len(idle) - len(keep)
            if keep:
                self._idle[key] = keep
            else:
                del self._idle[key]

    async def _connect(self, key: tuple[str, int], connect_s: float) -> _Conn:
        loop = asyncio.get_running_loop()
        host, port = key
        errors: list[OSError] = []
        try:
            async with asyncio.timeout(connect_s):
                addresses = await _resolve(loop, host, port)
                for family, address in addresses:
                    try:
                        _, conn = await loop.create_connection(
                            lambda: _Conn(loop, key), address, port, family=family
                        )
                    except OSError as exc:
                        errors.append(exc)
                        continue
                    self.stats.connections += 1
                    return conn
        except TimeoutError:
            raise ConnectTimeout("connect timed out") from None
        except OSError as exc:  # resolution failed
            raise ConnectFailed(exc) from None
        refused = [e for e in errors if isinstance(e, ConnectionRefusedError)]
        raise ConnectFailed(refused[0] if refused else errors[-1])

    async def close(self) -> None:
        """Close idle connections; busy ones are closed when their request ends."""
        self._closed = True
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()
        self._idle_count = 0


async def _resolve(loop: asyncio.AbstractEventLoop, host: str, port: int) -> list[tuple[int, str]]:
    """(family, address) pairs to try in order; no lookup for IP literals."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return [(family, host)]
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out: list[tuple[int, str]] = []
    for family, _, _, _, sockaddr in infos:
        pair = (int(family), str(sockaddr[0]))
        if pair not in out:
            out.append(pair)
    if not out:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return out
