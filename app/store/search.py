"""Search over workflow and task executions as indexed SQL.

A parsed search (app/services/search.py turns Conductor's query string into one) becomes a
WHERE over the copied columns of `workflows` / `tasks`, an ORDER BY on the same columns with the
id as the last key (stable pages), LIMIT/OFFSET, and a COUNT(*) over the same WHERE for
totalHits. Only the documents of the returned page are read back.

Free text is the one part that looks inside `doc`: a case-sensitive substring test of the
stored JSON text. It has no index; the database applies it to the rows the column filters
(and their indexes) have already narrowed, so without any other filter it reads every row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.store.tables import tasks, workflows

# How a field's values are typed: text, a 32-bit integer (version, priority), epoch ms, or
# an execution status (validated against the status enum by the parser).
FieldKind = Literal["str", "int", "time", "status"]
Op = Literal["=", "!=", "IN", ">", ">=", "<", "<="]
Value = str | int


@dataclass(frozen=True)
class Field:
    column: sa.Column[Any]
    kind: FieldKind


@dataclass(frozen=True)
class Clause:
    """`field op values`; values are already typed for the field's column."""

    field: str
    op: Op
    values: tuple[Value, ...]


@dataclass(frozen=True)
class SortKey:
    field: str
    descending: bool


@dataclass(frozen=True)
class Search:
    clauses: tuple[Clause, ...] = ()
    free_text: str | None = None
    sort: tuple[SortKey, ...] = ()
    start: int = 0
    size: int = 100


@dataclass(frozen=True)
class Target:
    """One searchable table: its API field names, id column and default order."""

    table: sa.Table
    id_column: sa.Column[Any]
    fields: dict[str, Field]
    default_sort: SortKey


_W = workflows.c
WORKFLOW_FIELDS: dict[str, Field] = {
    "workflowType": Field(_W.name, "str"),
    "status": Field(_W.status, "status"),
    "correlationId": Field(_W.correlation_id, "str"),
    "workflowId": Field(_W.workflow_id, "str"),
    "version": Field(_W.version, "int"),
    "startTime": Field(_W.created_at, "time"),
    "createTime": Field(_W.created_at, "time"),
    "updateTime": Field(_W.updated_at, "time"),
    "endTime": Field(_W.end_time, "time"),
    "parentWorkflowId": Field(_W.parent_workflow_id, "str"),
    "idempotencyKey": Field(_W.idempotency_key, "str"),
    "priority": Field(_W.priority, "int"),
    "createdBy": Field(_W.created_by, "str"),
}

_T = tasks.c
# taskDefName is not a column (it differs from taskType for system tasks), so it is not
# searchable rather than silently answered from taskType.
TASK_FIELDS: dict[str, Field] = {
    "taskType": Field(_T.task_type, "str"),
    "status": Field(_T.status, "status"),
    "workflowId": Field(_T.workflow_id, "str"),
    "taskId": Field(_T.task_id, "str"),
    "referenceTaskName": Field(_T.ref_name, "str"),
    "scheduledTime": Field(_T.scheduled_time, "time"),
    "startTime": Field(_T.start_time, "time"),
    "endTime": Field(_T.end_time, "time"),
    "updateTime": Field(_T.update_time, "time"),
}

WORKFLOW_TARGET = Target(
    workflows, _W.workflow_id, WORKFLOW_FIELDS, SortKey("startTime", descending=True)
)
TASK_TARGET = Target(tasks, _T.task_id, TASK_FIELDS, SortKey("scheduledTime", descending=True))


def _condition(field: Field, clause: Clause) -> sa.ColumnElement[bool]:
    col = field.column
    values = clause.values
    match clause.op:
        case "=":
            return col == values[0]
        case "!=":
            # SQL's `NULL != 'x'` is unknown; a workflow without a correlationId is still
            # one whose correlationId is not 'x'.
            cond = col != values[0]
            return sa.or_(cond, col.is_(None)) if col.nullable else cond
        case "IN":
            return col.in_(values)
        case ">":
            return col > values[0]
        case ">=":
            return col >= values[0]
        case "<":
            return col < values[0]
        case "<=":
            return col <= values[0]
    raise AssertionError(f"unhandled operator {clause.op}")  # pragma: no cover


def _free_text(doc: sa.Column[Any], text: str, dialect: str) -> sa.ColumnElement[bool]:
    if dialect == "sqlite":
        # SQLite's LIKE ignores ASCII case; instr() is a plain, case-sensitive substring test
        # with no wildcards to escape.
        return sa.func.instr(doc, text) > 0
    # doc LIKE '%' || :text || '%' ESCAPE '/', with %, _ and / in the text escaped.
    return doc.contains(text, autoescape=True)


def where_clause(target: Target, search: Search, dialect: str) -> list[sa.ColumnElement[bool]]:
    conditions = [_condition(target.fields[c.field], c) for c in search.clauses]
    if search.free_text:
        conditions.append(_free_text(target.table.c.doc, search.free_text, dialect))
    return conditions


def order_by(target: Target, sort: tuple[SortKey, ...]) -> list[sa.UnaryExpression[Any]]:
    keys: list[sa.UnaryExpression[Any]] = []
    for key in sort or (target.default_sort,):
        col = target.fields[key.field].column
        expr = col.desc() if key.descending else col.asc()
        # Same NULL placement on both databases (they differ by default); only on nullable
        # columns, so a plain index on a NOT NULL column still serves the order on Postgres.
        keys.append(expr.nulls_last() if col.nullable else expr)
    keys.append(target.id_column.asc())  # ties broken by id: pages never overlap or skip
    return keys


async def run_search(
    conn: AsyncConnection, target: Target, search: Search
) -> tuple[int, list[str]]:
    """(totalHits, the page's stored documents in order)."""
    conditions = where_clause(target, search, conn.dialect.name)
    total = await conn.scalar(
        sa.select(sa.func.count()).select_from(target.table).where(*conditions)
    )
    total = int(total or 0)
    if search.size == 0 or search.start >= total:
        return total, []
    page = (
        sa.select(target.table.c.doc)
        .where(*conditions)
        .order_by(*order_by(target, search.sort))
        .offset(search.start)
        .limit(search.size)
    )
    return total, list(await conn.scalars(page))
