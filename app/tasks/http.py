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

Client layer: `slots` separate httpx clients, each serving one request at a time, instead of
one shared pool: the shared pool's bookkeeping costs 2-5x more CPU per request at 16-64
concurrent requests (encode/httpx#3215). Clients are created lazily and keep connections alive.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
import re
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

import httpx

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


@dataclass(frozen=True)
class _Request:
    method: str
    url: httpx.URL
    safe_uri: str
    headers: list[tuple[bytes, bytes]]
    content: bytes | None
    connect_ms: float
    read_ms: float
    async_complete: bool


class _Failure(Exception):
    """A failed call (network, size cap, deadline): FAILED with `output`."""

    def __init__(self, reason: str, output: Json | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.output = output if output is not None else {"response": {"error": reason}}


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
        self._slots = slots
        self._default_connect_ms = default_connect_timeout_ms
        self._default_read_ms = default_read_timeout_ms
        # LIFO so the most recently used client (with warm keep-alive connections) goes next.
        # `None` is the "closed" marker: whoever takes it puts it back, waking the next waiter.
        self._idle: asyncio.LifoQueue[httpx.AsyncClient | None] = asyncio.LifoQueue()
        self._created = 0
        self._closed = False
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
        """Close idle clients now; clients in use are closed when their request ends."""
        if self._closed:
            return
        self._closed = True
        clients: list[httpx.AsyncClient] = []
        while not self._idle.empty():
            client = self._idle.get_nowait()
            if client is not None:
                clients.append(client)
        self._idle.put_nowait(None)  # wakes requests waiting for a slot: they raise
        await asyncio.gather(*(client.aclose() for client in clients), return_exceptions=True)

    # --- client slots -------------------------------------------------------------------

    async def _acquire(self) -> httpx.AsyncClient:
        if self._closed:
            raise RuntimeError("HttpTask is closed")
        if self._idle.empty() and self._created < self._slots:
            self._created += 1  # reserve before awaiting so concurrent callers cannot overshoot
            try:
                return httpx.AsyncClient(
                    verify=await self._ssl_context(),
                    trust_env=False,
                    follow_redirects=False,
                    max_redirects=MAX_REDIRECTS,
                    headers={"User-Agent": USER_AGENT},
                    # One request at a time per client; a few idle connections to recent hosts.
                    limits=httpx.Limits(max_connections=4, max_keepalive_connections=4),
                )
            except BaseException:
                self._created -= 1
                raise
        client = await self._idle.get()
        if client is None:
            self._idle.put_nowait(None)
            raise RuntimeError("HttpTask is closed")
        return client

    async def _release(self, client: httpx.AsyncClient) -> None:
        if self._closed:
            await client.aclose()
        else:
            self._idle.put_nowait(client)

    async def _ssl_context(self) -> ssl.SSLContext:
        # Loading the CA bundle reads files and costs milliseconds: once, off the event loop.
        async with self._ssl_lock:
            if self._ssl is None:
                self._ssl = await asyncio.to_thread(httpx.create_ssl_context)
            return self._ssl

    # --- one call -----------------------------------------------------------------------

    async def _call(self, req: _Request) -> TaskOutcome:
        client = await self._acquire()
        try:
            return await self._send(client, req)
        finally:
            await self._release(client)

    async def _send(self, client: httpx.AsyncClient, req: _Request) -> TaskOutcome:
        connect_s, read_s = req.connect_ms / 1000, req.read_ms / 1000
        timeout = httpx.Timeout(connect=connect_s, read=read_s, write=read_s, pool=connect_s)
        request = client.build_request(
            req.method, req.url, headers=req.headers, content=req.content, timeout=timeout
        )
        try:
            response = await client.send(
                request, stream=True, follow_redirects=req.method in ("GET", "HEAD")
            )
            try:
                return await self._read(response, req)
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            raise _Failure(_describe_error(exc, req)) from None

    async def _read(self, response: httpx.Response, req: _Request) -> TaskOutcome:
        status = response.status_code
        result: Json = {
            "statusCode": status,
            "reasonPhrase": _reason_phrase(response),
            "headers": _headers(response),
        }
        too_large = f"Response body exceeds the limit of {self._max_bytes} bytes"
        declared = response.headers.get("content-length", "")
        # A HEAD response declares the size of a body it does not send.
        if req.method != "HEAD" and declared.isdigit() and int(declared) > self._max_bytes:
            raise _Failure(too_large, {"response": {**result, "error": too_large}})
        data = bytearray()
        async for chunk in response.aiter_bytes():  # decompressed: the cap bounds memory
            data += chunk
            if len(data) > self._max_bytes:
                raise _Failure(too_large, {"response": {**result, "error": too_large}})
        text = _decode(bytes(data), response)
        result["body"] = _parse_body(text, response.headers.get("content-type"))
        output: Json = {"response": result}
        if 200 <= status < 300:
            return TaskOutcome.completed(output)
        reason = f"Failed to invoke HTTP task due to: {status} {result['reasonPhrase']}"
        if text:
            snippet = text[:REASON_BODY_CHARS] + ("..." if len(text) > REASON_BODY_CHARS else "")
            reason += f': "{snippet}"'
        log.info("HTTP task got %s from %s", status, req.safe_uri)
        return TaskOutcome.failed(reason, output)

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
        try:
            url = httpx.URL(uri)
        except (httpx.InvalidURL, ValueError):
            raise _InputError(f"Invalid HTTP URI: {safe_uri}") from None
        if url.scheme not in ("http", "https"):
            raise _InputError(f"Invalid HTTP URI (scheme must be http or https): {safe_uri}")
        if not url.host:
            raise _InputError(f"Invalid HTTP URI (no host): {safe_uri}")

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

        # asyncComplete comes from the workflow task (added at the top level of the input), but
        # accept it inside http_request too.
        async_complete = task_input.get("asyncComplete", spec.get("asyncComplete"))
        return _Request(
            method=method,
            url=url,
            safe_uri=safe_uri,
            headers=headers,
            content=content,
            connect_ms=_millis(spec, "connectionTimeOut", self._default_connect_ms),
            read_ms=_millis(spec, "readTimeOut", self._default_read_ms),
            async_complete=async_complete is True
            or (isinstance(async_complete, str) and async_complete.strip().lower() == "true"),
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


# --- response ---------------------------------------------------------------------------


def _reason_phrase(response: httpx.Response) -> str:
    # The standard phrase, as Conductor reports it; the server's only for unknown codes.
    try:
        return HTTPStatus(response.status_code).phrase
    except ValueError:
        return response.reason_phrase


def _headers(response: httpx.Response) -> dict[str, list[str]]:
    """Response headers as {name: [values]}, names as the server spelled them."""
    out: dict[str, list[str]] = {}
    spelling: dict[str, str] = {}
    encoding = response.headers.encoding
    for raw_name, raw_value in response.headers.raw:
        name = raw_name.decode(encoding, errors="replace")
        key = spelling.setdefault(name.lower(), name)
        out.setdefault(key, []).append(raw_value.decode(encoding, errors="replace"))
    return out


def _decode(data: bytes, response: httpx.Response) -> str:
    charset = response.charset_encoding or "utf-8"
    try:
        codecs.lookup(charset)
    except LookupError:
        charset = "utf-8"
    return data.decode(charset, errors="replace")


def _is_json_type(content_type: str) -> bool:
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or mime.endswith("+json") or mime == "text/json"


def _reject_constant(name: str) -> Any:
    # NaN / Infinity are not JSON and would break storing the output: keep such bodies as text.
    raise ValueError(name)


def _parse_body(text: str, content_type: str | None) -> Any:
    if not text:
        return None
    if content_type is not None:
        if not _is_json_type(content_type):
            return text
    elif text.lstrip()[:1] not in ("{", "["):
        return text
    try:
        return json.loads(text, parse_constant=_reject_constant)
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
        return f"Too many redirects (more than {MAX_REDIRECTS}) from {uri}"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return f"Connection to {uri} failed: {str(exc) or type(exc).__name__}"
    if isinstance(exc, httpx.DecodingError):
        return f"Could not decode the response body from {uri}"
    # LocalProtocolError and the rest may quote the request itself: type name only.
    return f"HTTP request to {uri} failed: {type(exc).__name__}"
