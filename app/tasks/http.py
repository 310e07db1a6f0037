"""The HTTP system task: call a URI with the task's resolved input and report the response.

Input is Conductor's: the request keys sit under `http_request` (legacy) or flat in the task
input. `uri` is required; `method` defaults to GET; `headers`, `body`, `accept`, `contentType`,
`connectionTimeOut` / `readTimeOut` (ms, 3000 each) and `asyncComplete` are optional.
Output is `{"response": {"statusCode", "reasonPhrase", "headers": {name: [values]}, "body"}}`.

Decisions (where we differ from, or pin down, Conductor):
- Redirects are followed for GET and HEAD only (at most 5); other methods get the 3xx back,
  which fails the task, so a request body is never replayed to another location.
- Response body: parsed as JSON when the response Content-Type is JSON (`application/json`,
  `*/*+json`, `text/json`), or when there is no Content-Type and the text is a JSON object or array;
  otherwise it stays text. An empty body is `None`. Invalid JSON stays text.
- Non-2xx responses fail the task (FAILED, retryable) but keep the response *map* in the
  output (Conductor stores an exception string instead).
- Bad input (no/invalid uri, method, headers, timeouts) is FAILED_WITH_TERMINAL_ERROR: a retry
  would send the same request.
- Request Content-Type is sent only with a body; explicit `headers` override `accept` and
  `contentType`. A dict body with `application/x-www-form-urlencoded` is form-encoded; any
  other non-string body is JSON-encoded; strings are sent as-is.
- Reasons and logs never show request headers or body, and URIs are shown without userinfo.
- Proxy environment variables and .netrc are ignored (like Conductor's JVM client);
  SSL_CERT_FILE / SSL_CERT_DIR are honoured so operators can add CAs.
- `timeout_hint_s`, when given, caps the whole call (waiting for a client slot included):
  `readTimeOut` is per socket read, so a server dripping bytes could otherwise hold a slot.

- Cookies are not kept between calls (nor across redirects): a cookie one workflow's endpoint
  set must not reach another workflow's request. An explicit `Cookie` header is sent as given.

Client layer: at most `slots` calls run at a time (waiters queue in order; `close()` fails
them). Plain `http://` calls go through the lean HTTP/1.1 client in `app.tasks.http_wire`:
one keep-alive pool per (host, port), requests built here, responses parsed by llhttp. It
costs about a tenth of httpx's CPU per call, which matters because the server is CPU-bound
and the HTTP task is most of its work. It sends what httpx would send (same headers, URL
normalisation, Basic auth from userinfo) and the response is shaped by the same code, so
the output is the same on both paths. `https://` calls, and the few requests it leaves to
httpx (explicit Content-Length, Transfer-Encoding or Upgrade headers, header values h11
would refuse), use httpx clients that serve one request at a time each, created lazily (a
shared httpx pool's bookkeeping costs 2-5x more CPU at 16-64 concurrent requests,
encode/httpx#3215). A redirect from http:// to https:// continues on httpx. Differences of
the lean path: an obsolete folded response header line fails the call (httpx unfolds it),
and a server that answers a HEAD request with a body only costs its connection.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import contextlib
import email.message
import functools
import ipaddress
import json
import logging
import re
import socket
import ssl
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, NamedTuple
from urllib.parse import urlencode

import httpx

from app.tasks import http_wire as wire
from app.tasks.base import Json, TaskOutcome

log = logging.getLogger(__name__)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
MISSING_URI = "Missing HTTP URI.  See documentation for HttpTask for required input parameters"
DEFAULT_MEDIA_TYPE = "application/json"
REASON_BODY_CHARS = 500
MAX_REDIRECTS = 5
USER_AGENT = "Baton-HttpTask"

# RFC 9110 token characters for header names.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# A header value must not smuggle extra lines (or NULs) into the request.
_BAD_VALUE_CHARS = re.compile(r"[\r\n\x00]")

# Plain http:// URIs that httpx.URL would leave exactly as they are (lower-case host, no
# userinfo, no fragment, only characters it never re-encodes): parsed without httpx.URL,
# which costs more than the rest of the request. Anything else goes through httpx.URL.
_PLAIN_URI = re.compile(
    r"http://([a-z0-9.-]+)(?::([0-9]{1,5}))?"
    r"(/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*)?"
    r"(\?[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*)?"
)
_IPV4_STYLE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")  # as httpx: validated as IPv4
# A request header value h11 (httpx) accepts; others keep the httpx path, and its error.
_H11_VALUE = re.compile(rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?")
# Request headers the lean client leaves to httpx (framing and protocol switches).
_HTTPX_ONLY_HEADERS = frozenset({b"content-length", b"transfer-encoding", b"upgrade"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_ENCODINGS = b"gzip, deflate"  # what httpx (without brotli / zstandard) asks for


def redact_uri(uri: str) -> str:
    """`uri` without `user:password@`, for reasons and logs. Works on unparseable text too."""
    scheme_end = uri.find("://")
    if scheme_end < 0:
        return uri
    start = scheme_end + 3
    end = len(uri)
    for sep in "/?#":
        pos = uri.find(sep, start)
        if pos >= 0:
            end = min(end, pos)
    at = uri.rfind("@", start, end)
    if at < 0:
        return uri
    return uri[:start] + uri[at + 1 :]


class _InputError(Exception):
    """Input that can never work: reported as FAILED_WITH_TERMINAL_ERROR."""


class _Target(NamedTuple):
    """Where the lean client sends an http:// request, as httpx would."""

    host: str  # to connect to (IDNA-encoded; IPv6 without brackets)
    port: int
    netloc: bytes  # the Host header
    raw_path: bytes  # the request target
    authorization: bytes | None  # Basic, from userinfo


@dataclass(slots=True)
class _Request:
    method: str
    uri: str
    safe_uri: str
    headers: list[tuple[bytes, bytes]]
    content: bytes | None
    connect_ms: float
    read_ms: float
    async_complete: bool
    target: _Target | None  # None: the httpx path
    parsed: httpx.URL | None = None

    @property
    def url(self) -> httpx.URL:
        if self.parsed is None:
            self.parsed = httpx.URL(self.uri)
        return self.parsed


class _Failure(Exception):
    """A failed call (network, size cap, deadline): FAILED with `output`."""

    def __init__(self, reason: str, output: Json | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.output = output if output is not None else {"response": {"error": reason}}


class _TooManyRedirects(Exception):
    pass


@dataclass
class _Slots:
    """At most `size` calls at a time; waiters are served in order. `close()` fails waiters."""

    size: int
    busy: int = 0
    closed: bool = False
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)

    async def enter(self) -> None:
        if self.closed:
            raise RuntimeError("HttpTask is closed")
        if self.busy < self.size and not self.waiters:
            self.busy += 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        try:
            await fut  # the leaving call hands its slot over
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self.leave()  # handed a slot, then cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self.waiters.remove(fut)
            raise

    def leave(self) -> None:
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self.busy -= 1

    def close(self) -> None:
        self.closed = True
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_exception(RuntimeError("HttpTask is closed"))


class HttpTask:
    """Runs HTTP tasks. Satisfies `app.tasks.base.AsyncTask`; call `close()` at shutdown."""

    def __init__(
        self,
        *,
        max_response_bytes: int = 10 * 1024 * 1024,
        slots: int = 64,
        default_connect_timeout_ms: int = 3000,
        default_read_timeout_ms: int = 3000,
    ) -> None:
        if slots < 1:
            raise ValueError("slots must be at least 1")
        if max_response_bytes < 0:
            raise ValueError("max_response_bytes must not be negative")
        self._max_bytes = max_response_bytes
        self._slots = _Slots(slots)
        self._default_connect_ms = default_connect_timeout_ms
        self._default_read_ms = default_read_timeout_ms
        self._wire = wire.WirePool(max_idle=4 * slots)
        # httpx clients for https:// (and the rare request the lean client leaves to httpx),
        # one request at a time each, most recently used first; at most one per slot.
        self._clients: list[httpx.AsyncClient] = []
        self._ssl: ssl.SSLContext | None = None
        self._ssl_lock = asyncio.Lock()

    async def execute(
        self, task_input: Json, *, timeout_hint_s: float | None = None
    ) -> TaskOutcome:
        try:
            request = self._parse(task_input)
        except _InputError as exc:
            return TaskOutcome.failed(str(exc), terminal=True)
        try:
            if timeout_hint_s is not None and timeout_hint_s > 0:
                try:
                    async with asyncio.timeout(timeout_hint_s):
                        outcome = await self._call(request)
                except TimeoutError:
                    raise _Failure(
                        f"HTTP request to {request.safe_uri} did not complete within "
                        f"{timeout_hint_s:g} s"
                    ) from None
            else:
                outcome = await self._call(request)
        except _Failure as failure:
            log.info("HTTP task failed: %s", failure.reason)
            return TaskOutcome.failed(failure.reason, failure.output)
        if outcome.status == "COMPLETED" and request.async_complete:
            # The call succeeded; the task now waits for an external update.
            return TaskOutcome("IN_PROGRESS", outcome.output, wait_for_update=True)
        return outcome

    async def close(self) -> None:
        """Close idle connections now; connections in use are closed when their request ends."""
        if self._slots.closed:
            return
        self._slots.close()  # wakes requests waiting for a slot: they raise
        clients, self._clients = self._clients, []
        await self._wire.close()
        await asyncio.gather(*(client.aclose() for client in clients), return_exceptions=True)

    # --- one call -----------------------------------------------------------------------

    async def _call(self, req: _Request) -> TaskOutcome:
        await self._slots.enter()
        try:
            if req.target is not None:
                response = await self._send_lean(req, req.target)
            else:
                response = await self._send_httpx(req, req.url, req.headers, hops=0)
        finally:
            self._slots.leave()
        return self._outcome(response, req)

    async def _send_lean(self, req: _Request, target: _Target) -> wire.Response:
        method = req.method
        follow = method in ("GET", "HEAD")
        headers = _wire_headers(req, target)
        keep_alive = not _asks_to_close(req.headers)
        hops = 0
        while True:
            payload = _wire_payload(method, target.raw_path, headers, req.content)
            try:
                response = await self._wire.request(
                    target.host,
                    target.port,
                    payload,
                    method=method,
                    keep_alive=keep_alive,
                    follow_redirects=follow,
                    connect_s=req.connect_ms / 1000,
                    read_s=req.read_ms / 1000,
                    max_bytes=self._max_bytes,
                )
            except wire.TooLarge as exc:
                raise self._too_large(exc.head) from None
            except wire.WireError as exc:
                raise _Failure(_describe_wire_error(exc, req)) from None
            location = _location(response) if follow else None
            if location is None:
                return response
            if hops >= MAX_REDIRECTS:
                raise _Failure(_too_many_redirects(req))
            hops += 1
            # Redirects are rare: work them out with httpx.URL, as httpx does.
            current = _url_of(target)
            try:
                url = _redirect_url(current, location)
            except httpx.InvalidURL as exc:
                reason = f"Invalid URL in location header: {exc}."
                raise _Failure(f"Connection to {req.safe_uri} failed: {reason}") from None
            headers = _redirect_headers(headers, current, url)
            next_target = _lean_target(url)
            if next_target is None:  # https:// or anything else: httpx takes it from here
                return await self._send_httpx(req, url, headers, hops=hops)
            target = next_target

    async def _send_httpx(
        self, req: _Request, url: httpx.URL, headers: list[tuple[bytes, bytes]], *, hops: int
    ) -> wire.Response:
        client = await self._client()
        try:
            connect_s, read_s = req.connect_ms / 1000, req.read_ms / 1000
            timeout = httpx.Timeout(connect=connect_s, read=read_s, write=read_s, pool=connect_s)
            request = client.build_request(
                req.method, url, headers=headers, content=req.content, timeout=timeout
            )
            try:
                response = await client.send(
                    request, stream=True, follow_redirects=req.method in ("GET", "HEAD")
                )
                try:
                    if hops and len(response.history) + hops > MAX_REDIRECTS:
                        raise _TooManyRedirects
                    return await self._read_httpx(response)
                finally:
                    await response.aclose()
            except httpx.HTTPError as exc:
                raise _Failure(_describe_error(exc, req)) from None
            except _TooManyRedirects:
                raise _Failure(_too_many_redirects(req)) from None
        finally:
            if self._slots.closed:
                await client.aclose()
            else:
                self._clients.append(client)

    async def _read_httpx(self, response: httpx.Response) -> wire.Response:
        head = wire.Response(response.status_code, response.reason_phrase, response.headers.raw)
        # A HEAD response declares the size of a body it does not send.
        if response.request.method != "HEAD" and _declared_too_large(head, self._max_bytes):
            raise self._too_large(head)
        data = bytearray()
        async for chunk in response.aiter_bytes():  # decompressed: the cap bounds memory
            data += chunk
            if len(data) > self._max_bytes:
                raise self._too_large(head)
        head.body = bytes(data)
        return head

    def _too_large(self, head: wire.Response) -> _Failure:
        too_large = f"Response body exceeds the limit of {self._max_bytes} bytes"
        return _Failure(too_large, {"response": {**_shape_head(head)[0], "error": too_large}})

    def _outcome(self, response: wire.Response, req: _Request) -> TaskOutcome:
        result, content_type = _shape_head(response)
        status = response.status
        text = _decode(response.body, content_type)
        result["body"] = _parse_body(text, content_type)
        output: Json = {"response": result}
        if 200 <= status < 300:
            return TaskOutcome.completed(output)
        reason = f"Failed to invoke HTTP task due to: {status} {result['reasonPhrase']}"
        if text:
            snippet = text[:REASON_BODY_CHARS] + ("..." if len(text) > REASON_BODY_CHARS else "")
            reason += f': "{snippet}"'
        log.info("HTTP task got %s from %s", status, req.safe_uri)
        return TaskOutcome.failed(reason, output)

    async def _client(self) -> httpx.AsyncClient:
        if self._clients:
            return self._clients.pop()
        return httpx.AsyncClient(
            verify=await self._ssl_context(),
            trust_env=False,
            follow_redirects=False,
            max_redirects=MAX_REDIRECTS,
            headers={"User-Agent": USER_AGENT},
            # One request at a time per client; a few idle connections to recent hosts.
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=4),
            # No cookie jar: one workflow's cookies must not reach another's requests.
            cookies=CookieJar(DefaultCookiePolicy(allowed_domains=[])),
        )

    async def _ssl_context(self) -> ssl.SSLContext:
        # Loading the CA bundle reads files and costs milliseconds: once, off the event loop.
        async with self._ssl_lock:
            if self._ssl is None:
                self._ssl = await asyncio.to_thread(httpx.create_ssl_context)
            return self._ssl

    # --- input --------------------------------------------------------------------------

    def _parse(self, task_input: Json) -> _Request:
        wrapped = task_input.get("http_request")
        if wrapped is None:
            spec: Json = task_input
        elif isinstance(wrapped, dict):
            spec = wrapped
        else:
            raise _InputError("Invalid http_request: expected an object")

        uri = spec.get("uri")
        if uri is None or uri == "":
            raise _InputError(MISSING_URI)
        if not isinstance(uri, str):
            raise _InputError("Invalid HTTP URI: expected a string")
        safe_uri = redact_uri(uri)
        url: httpx.URL | None = None
        target = _plain_target(uri)
        if target is None:
            try:
                url = httpx.URL(uri)
            except (httpx.InvalidURL, ValueError):
                raise _InputError(f"Invalid HTTP URI: {safe_uri}") from None
            if url.scheme not in ("http", "https"):
                raise _InputError(f"Invalid HTTP URI (scheme must be http or https): {safe_uri}")
            if not url.host:
                raise _InputError(f"Invalid HTTP URI (no host): {safe_uri}")
            target = _lean_target(url)

        method = spec.get("method")
        if method is None:
            method = "GET"
        if not isinstance(method, str) or not method.strip():
            raise _InputError("No HTTP method specified")
        method = method.strip().upper()
        if method not in METHODS:
            raise _InputError(f"Invalid HTTP method: {method[:40]}")

        content_type = _media_value(spec.get("contentType"), "contentType")
        body = spec.get("body")
        content = None if body is None else _encode_body(body, content_type)
        headers = _user_headers(spec.get("headers"))
        names = {name.lower() for name, _ in headers}
        # Explicit headers win over the accept/contentType conveniences.
        if b"accept" not in names:
            headers.append((b"Accept", _header_bytes(_media_value(spec.get("accept"), "accept"))))
        if content is not None and b"content-type" not in names:
            headers.append((b"Content-Type", _header_bytes(content_type)))
        if target is not None and (
            not names.isdisjoint(_HTTPX_ONLY_HEADERS)
            or not all(_H11_VALUE.fullmatch(value) for _, value in headers)
        ):
            target = None  # httpx sends these as it always did (or refuses them)

        # asyncComplete comes from the workflow task (added at the top level of the input), but
        # accept it inside http_request too.
        async_complete = task_input.get("asyncComplete", spec.get("asyncComplete"))
        return _Request(
            method=method,
            uri=uri,
            safe_uri=safe_uri,
            headers=headers,
            content=content,
            connect_ms=_millis(spec, "connectionTimeOut", self._default_connect_ms),
            read_ms=_millis(spec, "readTimeOut", self._default_read_ms),
            async_complete=async_complete is True
            or (isinstance(async_complete, str) and async_complete.strip().lower() == "true"),
            target=target,
            parsed=url,
        )


def _media_value(value: Any, key: str) -> str:
    if value is None or value == "" or value == []:
        return DEFAULT_MEDIA_TYPE
    if isinstance(value, list):
        text = ", ".join(str(item) for item in value)
    elif isinstance(value, str):
        text = value
    else:
        raise _InputError(f"Invalid {key}: expected a string")
    if _BAD_VALUE_CHARS.search(text):
        raise _InputError(f"Invalid {key}: contains line breaks")
    return text


def _user_headers(raw: Any) -> list[tuple[bytes, bytes]]:
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise _InputError("Invalid HTTP headers: expected an object")
    headers: list[tuple[bytes, bytes]] = []
    for name, value in raw.items():
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise _InputError(f"Invalid HTTP header name: {str(name)[:60]!r}")
        if value is None:  # as Conductor: null header values are dropped
            continue
        text = _stringify(value)
        if _BAD_VALUE_CHARS.search(text):
            # Name only: the value may be a secret.
            raise _InputError(f"Invalid value for HTTP header {name!r}: contains line breaks")
        headers.append((name.encode("ascii"), _header_bytes(text)))
    return headers


def _stringify(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def _header_bytes(text: str) -> bytes:
    # httpx would refuse non-ASCII str values; send UTF-8 bytes instead of failing.
    return text.encode("utf-8")


def _encode_body(body: Any, content_type: str) -> bytes:
    if isinstance(body, str):
        return body.encode("utf-8")
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == "application/x-www-form-urlencoded" and isinstance(body, dict):
        pairs = [(str(k), _stringify(v)) for k, v in body.items() if v is not None]
        return urlencode(pairs).encode("ascii")
    try:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise _InputError(f"Invalid HTTP body: cannot encode as JSON ({exc})") from None


def _millis(spec: Json, key: str, default: int) -> float:
    value = spec.get(key)
    if value is None:
        return float(default)
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise _InputError(f"Invalid {key}: not a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise _InputError(f"Invalid {key}: must be a positive number of milliseconds")
    return float(value)


# --- the lean path ----------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _valid_ipv4(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ipaddress.AddressValueError:
        return False
    return True


def _plain_target(uri: str) -> _Target | None:
    """The target of a plain http:// URI that httpx.URL would not change; else None."""
    match = _PLAIN_URI.fullmatch(uri)
    if match is None:
        return None
    host, port_text, path, query = match.groups()
    if _IPV4_STYLE.fullmatch(host) and not _valid_ipv4(host):
        return None  # httpx.URL says why
    if not path:
        path = "/"
    elif "." in path:
        segments = path.split("/")
        if "." in segments or ".." in segments:
            return None  # httpx.URL removes dot segments
    port = 80 if port_text is None else int(port_text)
    if not 0 < port <= 65535:
        return None
    netloc = host if port == 80 else f"{host}:{port}"
    raw_path = path if query is None else path + query
    return _Target(host, port, netloc.encode("ascii"), raw_path.encode("ascii"), None)


def _lean_target(url: httpx.URL) -> _Target | None:
    """The lean client's target for a parsed URL; None if httpx must take it (https://)."""
    if url.scheme != "http" or not url.raw_host:
        return None
    port = url.port or 80
    if not 0 < port <= 65535:
        return None
    authorization = None
    if url.username or url.password:  # as httpx: userinfo becomes Basic auth
        userpass = url.username.encode("utf-8") + b":" + url.password.encode("utf-8")
        authorization = b"Basic " + base64.b64encode(userpass)
    host = url.raw_host.decode("ascii")
    return _Target(host, port, url.netloc, url.raw_path, authorization)


def _url_of(target: _Target) -> httpx.URL:
    return httpx.URL(f"http://{target.netloc.decode('ascii')}{target.raw_path.decode('ascii')}")


def _wire_headers(req: _Request, target: _Target) -> list[tuple[bytes, bytes]]:
    """The request's headers as httpx would send them (order aside)."""
    names = {name.lower() for name, _ in req.headers}
    headers: list[tuple[bytes, bytes]] = []
    if b"host" not in names:
        headers.append((b"Host", target.netloc))
    if b"accept-encoding" not in names:
        headers.append((b"Accept-Encoding", _ENCODINGS))
    if b"connection" not in names:
        headers.append((b"Connection", b"keep-alive"))
    if b"user-agent" not in names:
        headers.append((b"User-Agent", USER_AGENT.encode("ascii")))
    if target.authorization is None:
        headers += req.headers
    else:  # userinfo wins over an Authorization header, as in httpx
        headers += [(n, v) for n, v in req.headers if n.lower() != b"authorization"]
    if req.content is not None:
        headers.append((b"Content-Length", str(len(req.content)).encode("ascii")))
    elif req.method in _BODY_METHODS:
        headers.append((b"Content-Length", b"0"))
    if target.authorization is not None:
        headers.append((b"Authorization", target.authorization))
    return headers


def _wire_payload(
    method: str, raw_path: bytes, headers: list[tuple[bytes, bytes]], content: bytes | None
) -> bytes:
    parts = [method.encode("ascii"), b" ", raw_path, b" HTTP/1.1\r\n"]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    if content:
        parts.append(content)
    return b"".join(parts)


def _asks_to_close(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether the caller's headers say `Connection: close` (the defaults never do)."""
    for name, value in headers:
        if len(name) == 10 and name.lower() == b"connection" and b"close" in value.lower():
            return True
    return False


def _location(response: wire.Response) -> str | None:
    """The Location of a redirect to follow (as httpx's `has_redirect_location`), else None."""
    if response.status not in wire.REDIRECT_CODES:
        return None
    return _header_value(response.headers, b"location", _header_encoding(response.headers))


def _redirect_url(current: httpx.URL, location: str) -> httpx.URL:
    """As httpx's `_redirect_url`."""
    url = httpx.URL(location)
    if url.scheme and not url.host:
        url = url.copy_with(host=current.host)
    if url.is_relative_url:
        url = current.join(url)
    return url


def _port_or_default(url: httpx.URL) -> int | None:
    if url.port is not None:
        return url.port
    return {"http": 80, "https": 443}.get(url.scheme)


def _redirect_headers(
    headers: list[tuple[bytes, bytes]], current: httpx.URL, url: httpx.URL
) -> list[tuple[bytes, bytes]]:
    """As httpx's `_redirect_headers` for GET and HEAD (the methods that follow redirects)."""
    same_origin = (
        url.scheme == current.scheme
        and url.host == current.host
        and _port_or_default(url) == _port_or_default(current)
    )
    https_upgrade = (
        current.host == url.host
        and current.scheme == "http"
        and _port_or_default(current) == 80
        and url.scheme == "https"
        and _port_or_default(url) == 443
    )
    drop = {b"cookie"}  # httpx leaves cookies to its (here disabled) cookie store
    if not same_origin and not https_upgrade:
        drop.add(b"authorization")  # never to another origin
    out = [(n, v) for n, v in headers if n.lower() not in drop]
    if not same_origin:
        out = [(n, v) for n, v in out if n.lower() != b"host"]
        out.insert(0, (b"Host", url.netloc))
    return out


def _too_many_redirects(req: _Request) -> str:
    return f"Too many redirects (more than {MAX_REDIRECTS}) from {req.safe_uri}"


# --- response ---------------------------------------------------------------------------


def _header_encoding(raw: list[tuple[bytes, bytes]]) -> str:
    """As httpx's `Headers.encoding`: ASCII, else UTF-8, else ISO-8859-1."""
    for encoding in ("ascii", "utf-8"):
        try:
            for name, value in raw:
                name.decode(encoding)
                value.decode(encoding)
        except UnicodeDecodeError:
            continue
        return encoding
    return "iso-8859-1"


def _header_value(raw: list[tuple[bytes, bytes]], lower_name: bytes, encoding: str) -> str | None:
    """As httpx's `Headers.get`: repeated values joined with ", "."""
    values = [value.decode(encoding) for name, value in raw if name.lower() == lower_name]
    return ", ".join(values) if values else None


def _declared_too_large(head: wire.Response, max_bytes: int) -> bool:
    declared = _header_value(head.headers, b"content-length", _header_encoding(head.headers))
    return declared is not None and declared.isdigit() and int(declared) > max_bytes


_PHRASES = {status.value: status.phrase for status in HTTPStatus}


def _reason_phrase(status: int, server_phrase: str) -> str:
    # The standard phrase, as Conductor reports it; the server's only for unknown codes.
    return _PHRASES.get(status, server_phrase)


def _shape_head(response: wire.Response) -> tuple[Json, str | None]:
    """statusCode, reasonPhrase and headers ({name: [values]}, names as the server spelled
    them); and the Content-Type."""
    raw = response.headers
    encoding = _header_encoding(raw)
    out: dict[str, list[str]] = {}
    spelling: dict[str, str] = {}
    content_types: list[str] = []
    for raw_name, raw_value in raw:
        name = raw_name.decode(encoding, errors="replace")
        lower = name.lower()
        value = raw_value.decode(encoding, errors="replace")
        key = spelling.setdefault(lower, name)
        out.setdefault(key, []).append(value)
        if lower == "content-type":
            content_types.append(value)
    result: Json = {
        "statusCode": response.status,
        "reasonPhrase": _reason_phrase(response.status, response.reason),
        "headers": out,
    }
    return result, ", ".join(content_types) if content_types else None


@functools.lru_cache(maxsize=256)
def _charset(content_type: str) -> str:
    """The body's text encoding, as httpx's `Response.charset_encoding` (UTF-8 if unknown)."""
    charset = None
    if "charset" in content_type.lower():
        msg = email.message.Message()
        msg["content-type"] = content_type
        charset = msg.get_content_charset(failobj=None)
    if not charset:
        return "utf-8"
    try:
        codecs.lookup(charset)
    except LookupError:
        return "utf-8"
    return charset


def _decode(data: bytes, content_type: str | None) -> str:
    charset = "utf-8" if content_type is None else _charset(content_type)
    return data.decode(charset, errors="replace")


def _is_json_type(content_type: str) -> bool:
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or mime.endswith("+json") or mime == "text/json"


def _reject_constant(name: str) -> Any:
    # NaN / Infinity are not JSON and would break storing the output: keep such bodies as text.
    raise ValueError(name)


# json.loads(text, parse_constant=...) without building a decoder per call.
_JSON = json.JSONDecoder(parse_constant=_reject_constant)


def _parse_body(text: str, content_type: str | None) -> Any:
    if not text:
        return None
    if content_type is not None:
        if not _is_json_type(content_type):
            return text
    elif text.lstrip()[:1] not in ("{", "["):
        return text
    try:
        return _JSON.decode(text)  # a leading BOM fails here too, as in json.loads
    except ValueError:
        return text


# --- errors -----------------------------------------------------------------------------


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and everything it was raised from (chains and exception groups)."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        for nxt in (current.__cause__, current.__context__):
            if nxt is not None:
                stack.append(nxt)


def _describe_wire_error(exc: wire.WireError, req: _Request) -> str:
    """As `_describe_error`, for the lean client's errors (same texts where they overlap)."""
    uri = req.safe_uri
    if isinstance(exc, wire.ConnectTimeout):
        return f"Connect timed out after {req.connect_ms:g} ms to {uri}"
    if isinstance(exc, wire.ReadTimeout):
        return f"Read timed out after {req.read_ms:g} ms waiting for {uri}"
    if isinstance(exc, wire.WriteTimeout):
        return f"Write timed out after {req.read_ms:g} ms sending to {uri}"
    if isinstance(exc, wire.ConnectFailed):
        cause = exc.cause
        if isinstance(cause, ConnectionRefusedError):
            return f"Connection refused: {uri}"
        if isinstance(cause, socket.gaierror):
            return f"Unknown host {req.url.host} ({cause.strerror or cause}): {uri}"
        return f"Connection failed to {uri}: {cause}"
    if isinstance(exc, wire.DecodeFailure):
        return f"Could not decode the response body from {uri}"
    return f"Connection to {uri} failed: {exc}"


def _describe_error(exc: httpx.HTTPError, req: _Request) -> str:
    """A reason for a failed call. Never includes request headers or body (they may hold
    secrets), so only exception types known to carry network detail contribute their text."""
    uri = req.safe_uri
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return f"Connect timed out after {req.connect_ms:g} ms to {uri}"
    if isinstance(exc, httpx.ReadTimeout):
        return f"Read timed out after {req.read_ms:g} ms waiting for {uri}"
    if isinstance(exc, httpx.WriteTimeout):
        return f"Write timed out after {req.read_ms:g} ms sending to {uri}"
    if isinstance(exc, httpx.ConnectError):
        for cause in _causes(exc):
            if isinstance(cause, ConnectionRefusedError):
                return f"Connection refused: {uri}"
            if isinstance(cause, socket.gaierror):
                return f"Unknown host {req.url.host} ({cause.strerror or cause}): {uri}"
            if isinstance(cause, ssl.SSLError):
                return f"TLS handshake failed with {uri}: {cause}"
        return f"Connection failed to {uri}: {str(exc) or type(exc).__name__}"
    if isinstance(exc, httpx.TooManyRedirects):
        return _too_many_redirects(req)
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return f"Connection to {uri} failed: {str(exc) or type(exc).__name__}"
    if isinstance(exc, httpx.DecodingError):
        return f"Could not decode the response body from {uri}"
    # LocalProtocolError and the rest may quote the request itself: type name only.
    return f"HTTP request to {uri} failed: {type(exc).__name__}"
