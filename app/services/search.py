"""Workflow and task search: Conductor's query string parsed into typed clauses, run as
indexed SQL (app/store/search.py), and the rows shaped as Conductor's SearchResult.

Query grammar (keywords case-insensitive, field names case-sensitive):

    query   := group (AND group)*
    group   := '(' query ')' | clause
    clause  := FIELD op value | FIELD IN '(' value (',' value)* ')'
    op      := '=' | '!=' | '<>' | '>' | '>=' | '<' | '<='
    value   := 'text' | "text" | bare word or number (RUNNING, 1, my_flow)

Inside quotes a doubled quote stands for itself ('it''s'). `>`/`<` forms apply to numeric
and time fields only; times are epoch milliseconds, or an ISO-8601 text ('2024-01-01T00:00Z',
UTC when no offset is given). Statuses are checked against the status enum. Anything else
(OR, NOT, LIKE, functions, unknown fields) is a 400 naming the part that is not supported.

freeText: `*` or empty means no filter; any other text is a case-sensitive substring test
over the stored JSON document (not Lucene syntax: `*` and `?` inside are literal).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from app.engine.model import TASK_STATUSES, WORKFLOW_STATUSES, TaskRecord, WorkflowRecord
from app.errors import BadRequest
from app.secrets import masking
from app.secrets.sealing import load_doc
from app.store.db import Database
from app.store.executions import dumps
from app.store.search import (
    TASK_TARGET,
    WORKFLOW_TARGET,
    Clause,
    Field,
    Op,
    Search,
    SortKey,
    Target,
    Value,
    run_search,
)

Json = dict[str, Any]

MAX_SEARCH_SIZE = 5000
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# -- query parsing ----------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
    | (?P<str>'(?:[^']|'')*'|"(?:[^"]|"")*")
    | (?P<op>!=|<>|>=|<=|=|>|<)
    | (?P<punct>[(),])
    | (?P<word>[^\s'"(),=!<>]+)
    """,
    re.VERBOSE,
)
_KEYWORDS = frozenset({"AND", "OR", "NOT", "IN"})
_INTEGER = re.compile(r"[+-]?\d+")
_RANGE_OPS = frozenset({">", ">=", "<", "<="})


class _QueryError(BadRequest):
    def __init__(self, detail: str) -> None:
        super().__init__(f"Invalid search query: {detail}")


@dataclass(frozen=True)
class _Token:
    kind: str  # str | op | punct | word | end
    text: str  # for `str`, the text between the quotes, unescaped
    pos: int  # 1-based column, for messages

    @property
    def keyword(self) -> str | None:
        upper = self.text.upper()
        return upper if self.kind == "word" and upper in _KEYWORDS else None

    def describe(self) -> str:
        if self.kind == "end":
            return "end of query"
        shown = repr(self.text) if self.kind == "str" else f"'{self.text}'"
        return f"{shown} at position {self.pos}"


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            if ch in "'\"":
                raise _QueryError(f"unterminated quoted text starting at position {pos + 1}")
            raise _QueryError(f"unexpected character '{ch}' at position {pos + 1}")
        kind = m.lastgroup
        assert kind is not None
        if kind != "ws":
            raw = m.group()
            value = raw[1:-1].replace(raw[0] * 2, raw[0]) if kind == "str" else raw
            tokens.append(_Token(kind, value, pos + 1))
        pos = m.end()
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


class _Parser:
    def __init__(self, text: str, target: Target, statuses: frozenset[str]) -> None:
        self.tokens = _tokenize(text)
        self.i = 0
        self.fields = target.fields
        self.statuses = statuses

    def parse(self) -> tuple[Clause, ...]:
        if self.peek.kind == "end":
            return ()
        clauses = self._query()
        if self.peek.kind != "end":
            self._unexpected(self.peek, "AND or the end of the query")
        return tuple(clauses)

    @property
    def peek(self) -> _Token:
        return self.tokens[self.i]

    def _next(self) -> _Token:
        tok = self.tokens[self.i]
        if tok.kind != "end":
            self.i += 1
        return tok

    def _unexpected(self, tok: _Token, expected: str) -> NoReturn:
        if tok.keyword in ("OR", "NOT"):
            raise _QueryError(
                f"{tok.keyword} (at position {tok.pos}) is not supported; "
                "clauses can only be joined by AND"
            )
        raise _QueryError(f"expected {expected}, found {tok.describe()}")

    def _query(self) -> list[Clause]:
        clauses = self._group()
        while self.peek.keyword == "AND":
            self._next()
            clauses += self._group()
        return clauses

    def _group(self) -> list[Clause]:
        # Only AND exists, so parentheses group nothing: their contents are flattened.
        if self.peek.kind == "punct" and self.peek.text == "(":
            self._next()
            clauses = self._query()
            if not (self.peek.kind == "punct" and self.peek.text == ")"):
                self._unexpected(self.peek, "')' or AND")
            self._next()
            return clauses
        return [self._clause()]

    def _clause(self) -> Clause:
        tok = self._next()
        if tok.kind != "word" or tok.keyword:
            self._unexpected(tok, "a field name")
        name = tok.text
        field = self.fields.get(name)
        if field is None:
            raise _QueryError(
                f"unknown field '{name}' at position {tok.pos}; searchable fields: "
                + ", ".join(sorted(self.fields))
            )
        op_tok = self._next()
        if op_tok.keyword == "IN":
            return Clause(name, "IN", self._list(name, field))
        if op_tok.kind != "op":
            if (op_tok.kind == "word" and not op_tok.keyword) or op_tok.keyword == "NOT":
                raise _QueryError(
                    f"unsupported operator '{op_tok.text}' after '{name}' at position "
                    f"{op_tok.pos}; supported: =, !=, >, >=, <, <=, IN"
                )
            self._unexpected(op_tok, f"an operator after '{name}'")
        op: Op = "!=" if op_tok.text == "<>" else _as_op(op_tok.text)
        if op in _RANGE_OPS and field.kind not in ("int", "time"):
            raise _QueryError(f"operator '{op}' needs a numeric or time field; '{name}' is neither")
        return Clause(name, op, (self._value(name, field),))

    def _list(self, name: str, field: Field) -> tuple[Value, ...]:
        tok = self._next()
        if not (tok.kind == "punct" and tok.text == "("):
            self._unexpected(tok, f"'(' after {name} IN")
        values = [self._value(name, field)]
        while True:
            tok = self._next()
            if tok.kind == "punct" and tok.text == ",":
                values.append(self._value(name, field))
            elif tok.kind == "punct" and tok.text == ")":
                return tuple(values)
            else:
                self._unexpected(tok, f"',' or ')' in the IN list of '{name}'")

    def _value(self, name: str, field: Field) -> Value:
        tok = self._next()
        if tok.kind not in ("str", "word") or tok.keyword:
            self._unexpected(tok, f"a value for '{name}'")
        return _typed(name, field, tok, self.statuses)


def _as_op(text: str) -> Op:
    ops: dict[str, Op] = {"=": "=", "!=": "!=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}
    return ops[text]


def _typed(name: str, field: Field, tok: _Token, statuses: frozenset[str]) -> Value:
    text = tok.text
    if field.kind == "str":
        return text
    if field.kind == "status":
        status = text.upper()
        if status not in statuses:
            raise _QueryError(
                f"unknown status '{text}' for '{name}'; expected one of "
                + ", ".join(sorted(statuses))
            )
        return status
    low, high = _INT32 if field.kind == "int" else _INT64
    if _INTEGER.fullmatch(text.strip()):
        number = int(text)
    elif field.kind == "time":
        number = _iso_to_ms(name, text)
    else:
        raise _QueryError(f"'{name}' needs an integer, found {tok.describe()}")
    if not low <= number <= high:
        raise _QueryError(f"value {number} for '{name}' is out of range")
    return number


def _iso_to_ms(name: str, text: str) -> int:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise _QueryError(
            f"'{name}' needs epoch milliseconds or an ISO-8601 time, found '{text}'"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - _EPOCH) // timedelta(milliseconds=1)


def parse_query(text: str, target: Target, statuses: frozenset[str]) -> tuple[Clause, ...]:
    return _Parser(text, target, statuses).parse()


def parse_sort(values: Sequence[str], target: Target) -> tuple[SortKey, ...]:
    """`field[:ASC|DESC]`, several joined by `|` and/or given as repeated parameters."""
    keys: list[SortKey] = []
    for raw in values:
        for part in raw.split("|"):
            part = part.strip()
            if not part:
                continue
            name, sep, direction = (p.strip() for p in part.partition(":"))
            direction = direction.upper() if sep else "ASC"
            if direction not in ("ASC", "DESC"):
                raise BadRequest(f"Invalid sort '{part}': the direction must be ASC or DESC")
            if name not in target.fields:
                raise BadRequest(
                    f"Invalid sort '{part}': unknown field '{name}'; sortable fields: "
                    + ", ".join(sorted(target.fields))
                )
            keys.append(SortKey(name, descending=direction == "DESC"))
    return tuple(keys)


def parse_free_text(text: str | None) -> str | None:
    if text is None or text.strip() in ("", "*"):
        return None
    return text


@dataclass(frozen=True)
class SearchParams:
    """The request parameters, as given."""

    start: int = 0
    size: int = 100
    sort: Sequence[str] = ()
    free_text: str | None = "*"
    query: str | None = ""


def build_search(
    params: SearchParams, target: Target, statuses: frozenset[str], noun: str
) -> Search:
    if params.size > MAX_SEARCH_SIZE:
        raise BadRequest(
            f"Cannot return more than {MAX_SEARCH_SIZE} {noun}. Please use pagination."
        )
    if params.size < 0:
        raise BadRequest(f"size must not be negative, was {params.size}")
    if params.start < 0:
        raise BadRequest(f"start must not be negative, was {params.start}")
    return Search(
        clauses=parse_query(params.query or "", target, statuses),
        free_text=parse_free_text(params.free_text),
        sort=parse_sort(params.sort, target),
        start=params.start,
        size=params.size,
    )


# -- result shaping ---------------------------------------------------------------------


def iso_time(ms: int) -> str:
    """Epoch ms as Conductor's summary time text, yyyy-MM-dd'T'HH:mm:ss.SSS'Z' (UTC)."""
    when = _EPOCH + timedelta(milliseconds=ms)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _without_nulls(body: Json) -> Json:
    return {k: v for k, v in body.items() if v is not None}


def workflow_summary(wf: WorkflowRecord) -> Json:
    ended = wf.endTime > 0
    return _without_nulls(
        {
            "workflowType": wf.workflowName,
            "version": wf.workflowVersion,
            "workflowId": wf.workflowId,
            "correlationId": wf.correlationId,
            "startTime": iso_time(wf.createTime),
            "updateTime": iso_time(wf.updateTime),
            "endTime": iso_time(wf.endTime) if ended else None,
            "status": wf.status,
            # Conductor's summaries carry input and output as JSON text, not objects.
            "input": dumps(wf.input),
            "output": dumps(wf.output),
            "reasonForIncompletion": wf.reasonForIncompletion,
            "executionTime": wf.endTime - wf.createTime if ended else 0,
            "event": wf.event,
            "failedReferenceTaskNames": ",".join(wf.failedReferenceTaskNames),
            "failedTaskNames": sorted(set(wf.failedTaskNames)),
            "priority": wf.priority,
            "createdBy": wf.createdBy,
            "taskToDomain": wf.taskToDomain,
            "idempotencyKey": wf.idempotencyKey,
            "parentWorkflowId": wf.parentWorkflowId,
        }
    )


def task_summary(task: TaskRecord) -> Json:
    # Conductor formats all four times, even a zero one (as 1970-01-01T00:00:00.000Z).
    return _without_nulls(
        {
            "workflowId": task.workflowInstanceId,
            "workflowType": task.workflowType,
            "correlationId": task.correlationId,
            "scheduledTime": iso_time(task.scheduledTime),
            "startTime": iso_time(task.startTime),
            "updateTime": iso_time(task.updateTime),
            "endTime": iso_time(task.endTime),
            "status": task.status,
            "reasonForIncompletion": task.reasonForIncompletion,
            "executionTime": task.endTime - task.startTime if task.endTime > 0 else 0,
            "queueWaitTime": (
                task.startTime - task.scheduledTime if task.startTime and task.scheduledTime else 0
            ),
            "taskDefName": task.taskDefName,
            "taskType": task.taskType,
            "input": dumps(task.inputData),
            "output": dumps(task.outputData),
            "taskId": task.taskId,
            "workflowPriority": task.workflowPriority,
            "domain": task.domain,
        }
    )


def _workflow_full(wf: WorkflowRecord) -> Json:
    # As Conductor's search-v2: the workflow without its tasks.
    return {**wf.to_json(), "tasks": []}


class SearchService:
    def __init__(self, db: Database, masker: masking.Masker | None = None) -> None:
        self.db = db
        self.masker = masker or masking.Masker()

    async def _run(self, target: Target, search: Search) -> tuple[int, list[Json]]:
        async with self.db.read() as conn:
            total, docs = await run_search(conn, target, search)
        return total, [load_doc(d) for d in docs]

    async def workflows(self, params: SearchParams, *, full: bool) -> Json:
        search = build_search(params, WORKFLOW_TARGET, WORKFLOW_STATUSES, "workflows")
        total, docs = await self._run(WORKFLOW_TARGET, search)
        records = [WorkflowRecord.from_doc(self.masker.view(d)) for d in docs]
        shape = _workflow_full if full else workflow_summary
        return {"totalHits": total, "results": [shape(wf) for wf in records]}

    async def tasks(self, params: SearchParams, *, full: bool) -> Json:
        search = build_search(params, TASK_TARGET, TASK_STATUSES, "tasks")
        total, docs = await self._run(TASK_TARGET, search)
        records = [TaskRecord.from_doc(self.masker.view(d)) for d in docs]
        results = [t.to_json() if full else task_summary(t) for t in records]
        return {"totalHits": total, "results": results}
