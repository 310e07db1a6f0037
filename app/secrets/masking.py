"""What a reader is shown: `***` in place of secrets, everywhere a value could come out.

Three rules, applied on every read path (workflow and task GETs, search, task logs, error
bodies) and, for the last one, to server log lines:

- key-based: the value under a `_secrets` or `_masked` key, at any depth, is shown as `***`;
- definition-based: workflow input and output fields named in `maskedFields` are `***`;
- value-based: any occurrence of a known secret value inside any string is replaced by `***`
  (a value that passes through an INLINE script or a header string is still caught).

Values shorter than MIN_MASKED_LENGTH are not masked by value: `1`, `true` or `admin` would
blank out unrelated data. Masking happens on the way out only; the running workflow keeps the real
values (sealed at rest, see sealing.py) because later tasks and workers need them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

MASK = "***"
MASKED_KEYS = frozenset({"_secrets", "_masked"})
MIN_MASKED_LENGTH = 6
# The process-wide set is bounded: values are kept for log redaction after rotation, and a
# server that rotates every minute for months must not grow without end.
MAX_TRACKED_VALUES = 50_000


class Redactor:
    """A set of secret values and one compiled pattern that finds any of them."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: dict[str, None] = {}  # insertion-ordered: the oldest go first
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()  # log records arrive from several threads
        self.add(values)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, value: object) -> bool:
        return value in self._values

    def add(self, values: Iterable[str]) -> None:
        fresh = [
            v
            for v in values
            if isinstance(v, str) and len(v) >= MIN_MASKED_LENGTH and v not in self._values
        ]
        if not fresh:
            return
        with self._lock:
            for v in fresh:
                self._values[v] = None
            while len(self._values) > MAX_TRACKED_VALUES:
                del self._values[next(iter(self._values))]
            self._pattern = None

    def with_values(self, values: Iterable[str]) -> Redactor:
        """A copy that also knows `values` (one workflow's own `_secrets` leaves)."""
        extra = [v for v in values if len(v) >= MIN_MASKED_LENGTH and v not in self._values]
        if not extra:
            return self
        return Redactor([*self._values, *extra])

    def _compiled(self) -> re.Pattern[str] | None:
        pattern = self._pattern
        if pattern is None and self._values:
            with self._lock:
                # Longest first, so a value containing another is replaced whole.
                ordered = sorted(self._values, key=len, reverse=True)
                pattern = self._pattern = re.compile("|".join(map(re.escape, ordered)))
        return pattern

    def text(self, text: str) -> str:
        pattern = self._compiled()
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)

    def value(self, value: Any) -> Any:
        """A copy of a JSON value with every known secret value inside strings masked."""
        pattern = self._compiled()
        if pattern is None:
            return value
        return _sub(value, pattern)


def _sub(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(MASK, value)
    if isinstance(value, dict):
        return {k: _sub(v, pattern) for k, v in value.items()}
    if isinstance(value, list):
        return [_sub(v, pattern) for v in value]
    return value


def _scrub(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(MASK, value)
    if isinstance(value, dict):
        return {k: v if k in MASKED_KEYS else _scrub(v, pattern) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, pattern) for v in value]
    return value


def secret_parts(value: str) -> list[str]:
    """A secret value and, when it is JSON, every string inside it: a reference such as
    `${workflow.secrets.creds.password}` hands over only a part, which must be masked too."""
    parts = [value]
    stripped = value.strip()
    if stripped[:1] in ("{", "["):
        try:
            parsed = json.loads(stripped)
        except ValueError:
            return parts
        parts.extend(_strings(parsed))
    return parts


def mask_keys(value: Any) -> Any:
    """A copy with the whole value under every `_secrets`/`_masked` key shown as `***`."""
    if isinstance(value, dict):
        return {k: MASK if k in MASKED_KEYS else mask_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_keys(v) for v in value]
    return value


def masked_leaves(value: Any, inside: bool = False) -> list[str]:
    """Every string leaf under a `_secrets`/`_masked` key: the values a workflow produced
    or passed on as secret, masked wherever else they turn up in the same workflow."""
    out: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(masked_leaves(v, inside or k in MASKED_KEYS))
    elif isinstance(value, list):
        for v in value:
            out.extend(masked_leaves(v, inside))
    elif inside and isinstance(value, str):
        out.append(value)
    return out


def mask_fields(doc: Any, fields: Iterable[str]) -> Any:
    if not isinstance(doc, dict):
        return doc
    names = set(fields)
    return {k: MASK if k in names else v for k, v in doc.items()}


# -- the process-wide redactor and the log filter ---------------------------------------

# Every secret value any app in this process has read, written or seen under `_secrets`;
# log lines and error bodies are scrubbed against it. API documents use their app's Masker.
PROCESS = Redactor()


class Masker:
    """One app's knowledge of secret values, for its read paths. Everything it learns
    also goes to PROCESS, so log lines are scrubbed of it too."""

    def __init__(self) -> None:
        self.known = Redactor()

    def learn(self, values: Iterable[str]) -> None:
        values = [part for v in values if isinstance(v, str) for part in secret_parts(v)]
        self.known.add(values)
        PROCESS.add(values)

    def text(self, text: str) -> str:
        return self.known.text(text)

    def scrub(self, value: Any) -> Any:
        """Known values masked in every string outside `_secrets`/`_masked` subtrees (those
        must keep their real values for later tasks; they are sealed at rest instead)."""
        pattern = self.known._compiled()
        return value if pattern is None else _scrub(value, pattern)

    def view(self, value: Any) -> Any:
        return view(value, known=self.known)

    def workflow_view(self, doc: dict[str, Any]) -> dict[str, Any]:
        return workflow_view(doc, known=self.known)


class RedactingFilter(logging.Filter):
    """Rewrites a log record so no known secret value reaches any handler's output."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not len(PROCESS):
            return True
        message = record.getMessage()
        redacted = PROCESS.text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and record.exc_info[0] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = PROCESS.text(text)
            record.exc_info = None  # handlers print exc_text instead of re-formatting it
        elif record.exc_text:
            record.exc_text = PROCESS.text(record.exc_text)
        if record.stack_info:
            record.stack_info = PROCESS.text(record.stack_info)
        return True


_FILTER = RedactingFilter()
_installed = False


def install_log_redaction() -> None:
    """Scrub every log record as it is created, whichever logger or handler it goes to
    (filters on a logger miss records propagated from its children; a record factory
    sees them all, including those of libraries and of test log capture)."""
    global _installed
    if _installed:
        return
    _installed = True
    make_record = logging.getLogRecordFactory()

    def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        _FILTER.filter(record)
        return record

    logging.setLogRecordFactory(redacting_factory)


# -- views: what the API shows ----------------------------------------------------------


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def view(value: Any, extra_values: Iterable[str] = (), *, known: Redactor | None = None) -> Any:
    """Any JSON document as a reader sees it: key-masked, then value-masked with the known
    secrets plus what the document itself holds under `_secrets`/`_masked`."""
    own = [*masked_leaves(value), *extra_values]
    return (known or Redactor()).with_values(own).value(mask_keys(value))


def workflow_view(doc: dict[str, Any], *, known: Redactor | None = None) -> dict[str, Any]:
    """A workflow (with or without tasks); `maskedFields` of its definition apply too."""
    definition = doc.get("workflowDefinition")
    fields = definition.get("maskedFields") if isinstance(definition, dict) else None
    if not fields:
        shown: dict[str, Any] = view(doc, known=known)
        return shown
    hidden: list[str] = []
    for part in ("input", "output"):
        section = doc.get(part)
        if isinstance(section, dict):
            hidden += [s for f in fields for s in _strings(section.get(f))]
    out: dict[str, Any] = view(doc, hidden, known=known)
    for part in ("input", "output"):
        out[part] = mask_fields(out.get(part), fields)
    return out


class KnownValuesRefresher:
    """Keeps a Masker in step with the secrets table: at once after a local change, and
    every few seconds for changes made by other processes on the same database."""

    def __init__(
        self, load: Callable[[], Awaitable[list[str]]], masker: Masker, interval_s: float = 5.0
    ) -> None:
        self.load = load
        self.masker = masker
        self.interval_s = interval_s
        self._tasks: set[asyncio.Task[None]] = set()
        self._periodic: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        self.masker.learn(await self.load())

    def soon(self) -> None:
        task = asyncio.get_running_loop().create_task(self._safe_refresh())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _safe_refresh(self) -> None:
        try:
            await self.refresh()
        except Exception:  # a failed refresh must not kill the caller; the next one retries
            logging.getLogger("baton.secrets").warning("could not refresh secret masks")

    def start_periodic(self) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(self.interval_s)
                await self._safe_refresh()

        self._periodic = asyncio.get_running_loop().create_task(loop())

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._periodic] if self._periodic else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
