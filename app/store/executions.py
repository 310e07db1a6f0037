"""Repository functions for workflow and task executions, queues, logs and poll data.

Documents are stored as compact JSON text; the indexed columns are written from the same
record in the same statement, so the two never disagree.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.engine.model import TaskRecord, WorkflowRecord
from app.secrets.sealing import dump_doc, load_doc
from app.store.db import ReadsOnly, hot
from app.store.dialects import DialectOps
from app.store.tables import poll_data, queue, task_logs, tasks, waiters, workflows

Json = dict[str, Any]


# Hot-path statements are built once: building a statement and its cache key costs more
# than SQLite takes to run it. Parameters are bound per call.
_WF_COLUMNS = (
    "name",
    "version",
    "status",
    "correlation_id",
    "priority",
    "parent_workflow_id",
    "idempotency_key",
    "created_by",
    "created_at",
    "updated_at",
    "end_time",
    "timeout_at",
    "doc",
)
_TASK_COLUMNS = (
    "workflow_id",
    "seq",
    "ref_name",
    "task_type",
    "status",
    "scheduled_time",
    "start_time",
    "end_time",
    "update_time",
    "timeout_at",
    "doc",
)
_SAVE_WORKFLOW = hot(
    sa.update(workflows)
    .where(workflows.c.workflow_id == sa.bindparam("_id"))
    .values({c: sa.bindparam(c) for c in _WF_COLUMNS})
)
_INSERT_WORKFLOW = hot(
    sa.insert(workflows).values(
        {"workflow_id": sa.bindparam("_id"), "definition": sa.bindparam("_definition")}
        | {c: sa.bindparam(c) for c in _WF_COLUMNS}
    )
)
_LOAD_WORKFLOW = hot(
    sa.select(workflows.c.doc, workflows.c.definition).where(
        workflows.c.workflow_id == sa.bindparam("_id")
    )
)
_LOAD_WORKFLOW_LOCKED = _LOAD_WORKFLOW.with_for_update()
_INSERT_TASKS = hot(
    sa.insert(tasks).values(
        {"task_id": sa.bindparam("_id")} | {c: sa.bindparam(c) for c in _TASK_COLUMNS}
    )
)
_UPDATE_TASKS = hot(
    sa.update(tasks)
    .where(tasks.c.task_id == sa.bindparam("_id"))
    .values({c: sa.bindparam(c) for c in _TASK_COLUMNS})
)
_UPDATE_TASK_IF = hot(
    sa.update(tasks)
    .where(tasks.c.task_id == sa.bindparam("_id"), tasks.c.status == sa.bindparam("_expected"))
    .values({c: sa.bindparam(c) for c in _TASK_COLUMNS})
)
_LOAD_TASKS = hot(
    sa.select(tasks.c.doc).where(tasks.c.workflow_id == sa.bindparam("_id")).order_by(tasks.c.seq)
)
_LOAD_TASKS_BY_ID = sa.select(tasks.c.doc).where(
    tasks.c.task_id.in_(sa.bindparam("_ids", expanding=True))
)
_GET_TASK = hot(sa.select(tasks.c.doc).where(tasks.c.task_id == sa.bindparam("_id")))
_TASK_WORKFLOW = hot(sa.select(tasks.c.workflow_id).where(tasks.c.task_id == sa.bindparam("_id")))
# One id per row of an executemany: a list of ids would need a new statement per length.
_REMOVE_ITEM = hot(sa.delete(queue).where(queue.c.item_id == sa.bindparam("_id")))


# Postgres: a workflow step's reads and writes as one statement each. Every statement is a
# round trip, and on Postgres a round trip costs more CPU than the row work: loading a
# workflow with its tasks and writing all that a step changed (the workflow row, updated and
# new tasks, queue items removed and pushed, the wake-up) take 2 statements instead of 6-8.
# Data-modifying CTEs all run, each once; none touches a row another one touches (see
# save_unit). Postgres may run them with a generic plan, which guesses 10 rows for every
# unnest(): an UPDATE joining tasks to one then hash-joins a seq scan of all tasks (ms per
# step on a busy table); the redundant `task_id = ANY(...)` keeps it on the primary key.
# SQLite runs the same work statement by statement: there a statement costs microseconds
# and no round trip.
_PG_TYPES = {
    "name": "text",
    "version": "int",
    "status": "text",
    "correlation_id": "text",
    "priority": "int",
    "parent_workflow_id": "text",
    "idempotency_key": "text",
    "created_by": "text",
    "created_at": "bigint",
    "updated_at": "bigint",
    "end_time": "bigint",
    "timeout_at": "bigint",
    "doc": "text",
    "workflow_id": "text",
    "seq": "int",
    "ref_name": "text",
    "task_type": "text",
    "scheduled_time": "bigint",
    "start_time": "bigint",
    "update_time": "bigint",
    "due_at": "bigint",
}
# Unlocked, with the row version (xmin) a guarded save compares: see save_unit(guard=).
_PG_PEEK_UNIT = hot(
    sa.text(
        "SELECT w.doc, w.definition, ARRAY(SELECT t.doc FROM tasks t"
        " WHERE t.workflow_id = w.workflow_id ORDER BY t.seq), w.xmin::text"
        " FROM workflows w WHERE w.workflow_id = :_id"
    )
)
_PG_LOAD_UNIT = sa.text(
    "SELECT w.doc, w.definition, ARRAY(SELECT t.doc FROM tasks t"
    " WHERE t.workflow_id = w.workflow_id ORDER BY t.seq)"
    " FROM workflows w WHERE w.workflow_id = :_id FOR UPDATE OF w"
)


def _pg_array(prefix: str, column: str) -> str:
    return f"CAST(:{prefix}_{column} AS {_PG_TYPES.get(column, 'text')}[])"


def _pg_save_sql(
    new_workflow: bool, notify: bool, guarded: bool = False, watch: bool = False
) -> str:
    # guarded: every write happens only if the workflow row is still the version read
    # (xmin), through the RETURNING row of `w` the others test; the statement returns a
    # row only then, with the row's new version.
    if new_workflow:
        columns = ["workflow_id", "definition", *_WF_COLUMNS]
        names = ", ".join(columns)
        values = ", ".join(f":w_{c}" for c in columns)
        workflow = f"INSERT INTO workflows ({names}) VALUES ({values}) RETURNING xmin::text AS v"
    else:
        sets = ", ".join(f"{c} = :w_{c}" for c in _WF_COLUMNS)
        guard = " AND xmin::text = CAST(:_xmin AS text)" if guarded else ""
        workflow = (
            f"UPDATE workflows SET {sets} WHERE workflow_id = :w_workflow_id{guard}"
            " RETURNING xmin::text AS v"
        )
    only = " AND EXISTS (SELECT 1 FROM w)" if guarded else ""
    task_cols = ["task_id", *_TASK_COLUMNS]
    task_sets = ", ".join(f"{c} = v.{c}" for c in _TASK_COLUMNS)
    updated = ", ".join(_pg_array("u", c) for c in task_cols)
    inserted = ", ".join(_pg_array("i", c) for c in task_cols)
    pushed = ", ".join(_pg_array("q", c) for c in ("queue_name", "item_id", "due_at", "priority"))
    notified = "pg_notify(:_channel, :_payload), " if notify else ""
    if watch:  # the workflow's own wake-up, only when another process waits on it (waiters)
        notified += (
            "CASE WHEN EXISTS (SELECT 1 FROM waiters WHERE workflow_id = ANY(CAST(:_watched AS"
            " text[])) AND until_ms > CAST(:_now AS bigint)) THEN pg_notify(:_channel,"
            " :_watch_payload) END, "
        )
    final = f"SELECT {notified}w.v FROM w"
    return (
        f"WITH w AS ({workflow}),"
        f" ut AS (UPDATE tasks SET {task_sets} FROM unnest({updated})"
        f" AS v({', '.join(task_cols)}) WHERE tasks.task_id = v.task_id"
        f" AND tasks.task_id = ANY({_pg_array('u', 'task_id')}){only}),"
        f" it AS (INSERT INTO tasks ({', '.join(task_cols)})"
        f" SELECT * FROM unnest({inserted}) WHERE TRUE{only}),"
        " dq AS (DELETE FROM queue WHERE item_id = ANY(CAST(:r_ids AS text[]))"
        " AND (queue_name, item_id) NOT IN"
        " (SELECT * FROM unnest(CAST(:q_queue_name AS text[]), CAST(:q_item_id AS text[])))"
        f"{only}),"
        f" iq AS (INSERT INTO queue (queue_name, item_id, due_at, priority)"
        f" SELECT * FROM unnest({pushed}) WHERE TRUE{only} ON CONFLICT (queue_name, item_id)"
        " DO UPDATE SET due_at = excluded.due_at, priority = excluded.priority) " + final
    )


_PG_SAVE = {
    (new, notify, guarded, watch): hot(sa.text(_pg_save_sql(new, notify, guarded, watch)))
    for new in (False, True)
    for notify in (False, True)
    for guarded in (False, True)
    for watch in (False, True)
    if not (new and guarded)
}


@dataclass(frozen=True)
class Watch:
    """A change's wake-up for the workflows it changed (Postgres): sent on `channel` with
    `payload` only if a process waits on one of `workflow_ids` at `now_ms` (waiters)."""

    channel: str
    payload: str
    workflow_ids: list[str]
    now_ms: int


async def load_unit(
    conn: AsyncConnection, ops: DialectOps, workflow_id: str, *, lock: bool
) -> tuple[WorkflowRecord, str, list[TaskRecord]] | None:
    """A workflow (locked for this transaction on Postgres when `lock`), its definition
    text and its tasks in order."""
    if ops.name == "postgresql" and lock:
        row = (await conn.execute(_PG_LOAD_UNIT, {"_id": workflow_id})).first()
        if row is None:
            return None
        docs: list[str] = row[2]
        tasks = [TaskRecord.from_doc(load_doc(d)) for d in docs]
        return WorkflowRecord.from_doc(load_doc(row[0])), row[1], tasks
    found = await load_workflow(conn, ops, workflow_id, lock=lock)
    if found is None:
        return None
    return found[0], found[1], await load_tasks(conn, workflow_id)


async def peek_unit(
    conn: AsyncConnection, workflow_id: str
) -> tuple[WorkflowRecord, str, list[TaskRecord], str] | None:
    """Postgres: load_unit without a lock, plus the row version a guarded save_unit
    compares (`xmin`, changed by every update of the row)."""
    row = (await conn.execute(_PG_PEEK_UNIT, {"_id": workflow_id})).first()
    if row is None:
        return None
    docs: list[str] = row[2]
    tasks = [TaskRecord.from_doc(load_doc(d)) for d in docs]
    return WorkflowRecord.from_doc(load_doc(row[0])), row[1], tasks, row[3]


async def save_unit(
    conn: AsyncConnection,
    ops: DialectOps,
    wf: WorkflowRecord,
    *,
    new_definition: str | None,
    new_tasks: Sequence[TaskRecord],
    changed_tasks: Sequence[TaskRecord],
    removed: Sequence[str],
    pushed: Sequence[tuple[str, str, int, int]],
    notify: tuple[str, str] | None,
    watch: Watch | None = None,
    final_of: object = None,
    guard: str | None = None,
) -> str | None:
    """Write what a step changed: the workflow row (inserted when `new_definition` is given),
    new and changed tasks, queue items removed then pushed (a push of a removed item wins),
    and Postgres notifications: `notify` (channel, payload) always, `watch` only to a
    waiting process.

    On a ReadsOnly connection (Postgres) this is the unit's final statement, written for
    `final_of`; with `guard` (the xmin peek_unit read) nothing is written unless the
    workflow row is still that version. Returns the row's new version (Postgres; "" on
    SQLite), None when the guard stopped the write."""
    if ops.name != "postgresql":
        if new_definition is not None:
            await insert_workflow(conn, wf, new_definition)
        else:
            await save_workflow(conn, wf)
        await insert_tasks(conn, new_tasks)
        await update_tasks(conn, changed_tasks)
        await remove_items(conn, removed)
        await push(conn, ops, pushed)
        return ""
    params: Json = {f"w_{k}": v for k, v in _workflow_columns(wf).items()}
    params["w_workflow_id"] = wf.workflowId
    if new_definition is not None:
        params["w_definition"] = new_definition
    for prefix, records in (("u", changed_tasks), ("i", new_tasks)):
        rows = [{"task_id": t.taskId, **_task_columns(t)} for t in records]
        for column in ("task_id", *_TASK_COLUMNS):
            params[f"{prefix}_{column}"] = [r[column] for r in rows]
    # One row per (queue, item): the last push of an item wins, as statement by statement.
    last: dict[tuple[str, str], tuple[int, int]] = {}
    for queue_name, item_id, due, priority in pushed:
        last[(queue_name, item_id)] = (due, priority)
    params["q_queue_name"] = [q for q, _ in last]
    params["q_item_id"] = [i for _, i in last]
    params["q_due_at"] = [d for d, _ in last.values()]
    params["q_priority"] = [p for _, p in last.values()]
    params["r_ids"] = list(dict.fromkeys(removed))
    if notify is not None:
        params["_channel"], params["_payload"] = notify
    if watch is not None:
        params["_channel"], params["_watch_payload"] = watch.channel, watch.payload
        params["_watched"], params["_now"] = watch.workflow_ids, watch.now_ms
    if guard is not None:
        params["_xmin"] = guard
    variant = (new_definition is not None, notify is not None, guard is not None)
    statement = _PG_SAVE[(*variant, watch is not None)]
    if isinstance(conn, ReadsOnly):
        result = await conn.final(final_of, statement, params)
    else:
        result = await conn.execute(statement, params)
    row = result.first()
    return None if row is None else str(row[-1])


def dumps(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def loads(text: str) -> Any:
    return json.loads(text)


# -- workflows --------------------------------------------------------------------------


def _workflow_columns(wf: WorkflowRecord) -> Json:
    return {
        "name": wf.workflowName,
        "version": wf.workflowVersion,
        "status": wf.status,
        "correlation_id": wf.correlationId,
        "priority": wf.priority,
        "parent_workflow_id": wf.parentWorkflowId,
        "idempotency_key": wf.idempotencyKey,
        "created_by": wf.createdBy,
        "created_at": wf.createTime,
        "updated_at": wf.updateTime,
        "end_time": wf.endTime or None,
        "timeout_at": wf.timeoutAt,
        "doc": dump_doc(wf.to_doc()),
    }


async def insert_workflow(conn: AsyncConnection, wf: WorkflowRecord, definition: str) -> None:
    await conn.execute(
        _INSERT_WORKFLOW,
        {"_id": wf.workflowId, "_definition": definition, **_workflow_columns(wf)},
    )


async def save_workflow(conn: AsyncConnection, wf: WorkflowRecord) -> None:
    await conn.execute(_SAVE_WORKFLOW, {"_id": wf.workflowId, **_workflow_columns(wf)})


async def set_workflow_definition(conn: AsyncConnection, workflow_id: str, definition: str) -> None:
    await conn.execute(
        sa.update(workflows)
        .where(workflows.c.workflow_id == workflow_id)
        .values(definition=definition)
    )


async def load_workflow(
    conn: AsyncConnection, ops: DialectOps, workflow_id: str, *, lock: bool
) -> tuple[WorkflowRecord, str] | None:
    query = _LOAD_WORKFLOW_LOCKED if lock and ops.name == "postgresql" else _LOAD_WORKFLOW
    row = (await conn.execute(query, {"_id": workflow_id})).first()
    if row is None:
        return None
    return WorkflowRecord.from_doc(load_doc(row[0])), row[1]


async def load_workflows(conn: AsyncConnection, ids: Sequence[str]) -> list[WorkflowRecord]:
    if not ids:
        return []
    rows = await conn.scalars(sa.select(workflows.c.doc).where(workflows.c.workflow_id.in_(ids)))
    by_id = {wf.workflowId: wf for wf in (WorkflowRecord.from_doc(load_doc(d)) for d in rows)}
    return [by_id[i] for i in ids if i in by_id]


async def find_by_idempotency_key(
    conn: AsyncConnection, name: str, key: str
) -> WorkflowRecord | None:
    doc = await conn.scalar(
        sa.select(workflows.c.doc).where(
            workflows.c.name == name, workflows.c.idempotency_key == key
        )
    )
    return WorkflowRecord.from_doc(load_doc(doc)) if doc is not None else None


async def delete_workflow(conn: AsyncConnection, workflow_id: str) -> None:
    task_ids = sa.select(tasks.c.task_id).where(tasks.c.workflow_id == workflow_id)
    await conn.execute(sa.delete(task_logs).where(task_logs.c.task_id.in_(task_ids)))
    await conn.execute(sa.delete(queue).where(queue.c.item_id.in_(task_ids)))
    await conn.execute(sa.delete(tasks).where(tasks.c.workflow_id == workflow_id))
    await conn.execute(sa.delete(workflows).where(workflows.c.workflow_id == workflow_id))


async def running_ids(
    conn: AsyncConnection, name: str, version: int | None, start: int, end: int
) -> list[str]:
    query = sa.select(workflows.c.workflow_id).where(
        workflows.c.name == name, workflows.c.status == "RUNNING"
    )
    if version is not None:
        query = query.where(workflows.c.version == version)
    if start and end:
        query = query.where(workflows.c.created_at.between(start, end))
    return list(await conn.scalars(query.order_by(workflows.c.created_at)))


async def correlated(
    conn: AsyncConnection, name: str, correlation_id: str, include_closed: bool
) -> list[WorkflowRecord]:
    query = sa.select(workflows.c.doc).where(
        workflows.c.name == name, workflows.c.correlation_id == correlation_id
    )
    if not include_closed:
        query = query.where(workflows.c.status.in_(("RUNNING", "PAUSED")))
    rows = await conn.scalars(query.order_by(workflows.c.created_at))
    return [WorkflowRecord.from_doc(load_doc(d)) for d in rows]


async def due_workflow_ids(conn: AsyncConnection, now: int, limit: int) -> list[str]:
    """Running workflows whose own timeout or one of whose tasks' timeouts ran out."""
    by_task = (
        sa.select(tasks.c.workflow_id)
        .join(workflows, workflows.c.workflow_id == tasks.c.workflow_id)
        .where(tasks.c.timeout_at <= now, workflows.c.status == "RUNNING")
        .limit(limit)
    )
    by_workflow = (
        sa.select(workflows.c.workflow_id)
        .where(workflows.c.timeout_at <= now, workflows.c.status == "RUNNING")
        .limit(limit)
    )
    ids = list(await conn.scalars(by_workflow))
    ids += [i for i in await conn.scalars(by_task) if i not in ids]
    return ids[:limit]


# -- tasks ------------------------------------------------------------------------------


def _task_columns(task: TaskRecord) -> Json:
    return {
        "workflow_id": task.workflowInstanceId,
        "seq": task.seq,
        "ref_name": task.referenceTaskName,
        "task_type": task.taskType,
        "status": task.status,
        "scheduled_time": task.scheduledTime,
        "start_time": task.startTime or None,
        "end_time": task.endTime or None,
        "update_time": task.updateTime,
        "timeout_at": task.timeoutAt,
        "doc": dump_doc(task.to_doc()),
    }


async def insert_tasks(conn: AsyncConnection, records: Sequence[TaskRecord]) -> None:
    if records:
        await conn.execute(_INSERT_TASKS, [{"_id": t.taskId, **_task_columns(t)} for t in records])


async def update_tasks(conn: AsyncConnection, records: Iterable[TaskRecord]) -> None:
    rows = [{"_id": t.taskId, **_task_columns(t)} for t in records]
    if rows:
        await conn.execute(_UPDATE_TASKS, rows)


async def update_task_if_status(conn: AsyncConnection, task: TaskRecord, expected: str) -> bool:
    """Write the task only if its stored status is still `expected` (a guarded claim)."""
    result = await conn.execute(
        _UPDATE_TASK_IF, {"_id": task.taskId, "_expected": expected, **_task_columns(task)}
    )
    return result.rowcount == 1


def _pg_update_if_sql() -> str:
    cols = ["task_id", *_TASK_COLUMNS]
    sets = ", ".join(f"{c} = v.{c}" for c in _TASK_COLUMNS)
    arrays = ", ".join(_pg_array("u", c) for c in cols)
    return (
        f"UPDATE tasks SET {sets} FROM unnest({arrays}) AS v({', '.join(cols)})"
        " WHERE tasks.task_id = v.task_id AND tasks.task_id = ANY(CAST(:u_task_id AS text[]))"
        " AND tasks.status = :_expected RETURNING tasks.task_id"
    )


_PG_UPDATE_IF = sa.text(_pg_update_if_sql())


async def update_tasks_if_status(
    conn: AsyncConnection, ops: DialectOps, tasks: Sequence[TaskRecord], expected: str
) -> set[str]:
    """update_task_if_status for several tasks; the ids written. One statement on Postgres
    (a round trip each would cost more than the rows)."""
    if ops.name != "postgresql" or len(tasks) < 2:
        return {t.taskId for t in tasks if await update_task_if_status(conn, t, expected)}
    params: Json = {"_expected": expected}
    rows = [{"task_id": t.taskId, **_task_columns(t)} for t in tasks]
    for column in ("task_id", *_TASK_COLUMNS):
        params[f"u_{column}"] = [r[column] for r in rows]
    return set(await conn.scalars(_PG_UPDATE_IF, params))


async def load_tasks(conn: AsyncConnection, workflow_id: str) -> list[TaskRecord]:
    rows = await conn.scalars(_LOAD_TASKS, {"_id": workflow_id})
    return [TaskRecord.from_doc(load_doc(d)) for d in rows]


async def load_tasks_by_id(conn: AsyncConnection, ids: Sequence[str]) -> list[TaskRecord]:
    if not ids:
        return []
    rows = await conn.scalars(_LOAD_TASKS_BY_ID, {"_ids": list(ids)})
    by_id = {t.taskId: t for t in (TaskRecord.from_doc(load_doc(d)) for d in rows)}
    return [by_id[i] for i in ids if i in by_id]


async def get_task(conn: AsyncConnection, task_id: str) -> TaskRecord | None:
    doc = await conn.scalar(_GET_TASK, {"_id": task_id})
    return TaskRecord.from_doc(load_doc(doc)) if doc is not None else None


async def task_workflow_id(conn: AsyncConnection, task_id: str) -> str | None:
    found: str | None = await conn.scalar(_TASK_WORKFLOW, {"_id": task_id})
    return found


async def delete_tasks(conn: AsyncConnection, ids: Sequence[str]) -> None:
    if ids:
        await conn.execute(sa.delete(queue).where(queue.c.item_id.in_(ids)))
        await conn.execute(sa.delete(task_logs).where(task_logs.c.task_id.in_(ids)))
        await conn.execute(sa.delete(tasks).where(tasks.c.task_id.in_(ids)))


async def count_in_progress(conn: AsyncConnection, task_type: str) -> int:
    count = await conn.scalar(
        sa.select(sa.func.count())
        .select_from(tasks)
        .where(tasks.c.task_type == task_type, tasks.c.status == "IN_PROGRESS")
    )
    return int(count or 0)


async def count_started_since(conn: AsyncConnection, task_type: str, since: int) -> int:
    count = await conn.scalar(
        sa.select(sa.func.count())
        .select_from(tasks)
        .where(tasks.c.task_type == task_type, tasks.c.start_time >= since)
    )
    return int(count or 0)


async def pending_tasks_of_type(
    conn: AsyncConnection, task_type: str, start: int, count: int
) -> list[TaskRecord]:
    rows = await conn.scalars(
        sa.select(tasks.c.doc)
        .where(tasks.c.task_type == task_type, tasks.c.status.in_(("SCHEDULED", "IN_PROGRESS")))
        .order_by(tasks.c.scheduled_time)
        .offset(start)
        .limit(count)
    )
    return [TaskRecord.from_doc(load_doc(d)) for d in rows]


# -- queues -----------------------------------------------------------------------------


async def push(
    conn: AsyncConnection,
    ops: DialectOps,
    items: Sequence[tuple[str, str, int, int]],
) -> None:
    """Queue (queue_name, item_id, due_at, priority) rows; an existing row is moved."""
    if not items:
        return
    rows = [{"queue_name": q, "item_id": i, "due_at": due, "priority": p} for q, i, due, p in items]
    stmt = ops.upsert_statement(queue, ["queue_name", "item_id"], ["due_at", "priority"])
    await conn.execute(stmt, rows)


async def remove_items(conn: AsyncConnection, item_ids: Sequence[str]) -> None:
    if item_ids:
        await conn.execute(_REMOVE_ITEM, [{"_id": i} for i in item_ids])


# The claim statements, built once per dialect with bound parameters (building one with its
# CTE and compiling it cost more than a worker poll's whole transaction on SQLite).
_CLAIMS: dict[tuple[str, str], Any] = {}


def _due_cte(ops: DialectOps) -> sa.CTE:
    query = (
        sa.select(queue.c.item_id)
        .where(queue.c.queue_name == sa.bindparam("_q"), queue.c.due_at <= sa.bindparam("_now"))
        .order_by(queue.c.priority.desc(), queue.c.due_at)
        .limit(sa.bindparam("_limit", type_=sa.Integer))
    )
    # MATERIALIZED: Postgres may otherwise re-run a LIMIT ... SKIP LOCKED subquery inside
    # the DELETE/UPDATE and claim more rows than asked for.
    return ops.skip_locked(query).cte("due").prefix_with("MATERIALIZED")


def _claim_statement(ops: DialectOps, kind: str) -> Any:
    stmt = _CLAIMS.get((ops.name, kind))
    if stmt is None:
        due = _due_cte(ops)
        where = (
            queue.c.queue_name == sa.bindparam("_q"),
            queue.c.item_id.in_(sa.select(due.c.item_id)),
        )
        if kind == "take":
            built: Any = sa.delete(queue).where(*where)
        else:
            built = sa.update(queue).where(*where).values(due_at=sa.bindparam("_until"))
        stmt = _CLAIMS[(ops.name, kind)] = hot(built.returning(queue.c.item_id))
    return stmt


async def take(
    conn: AsyncConnection, ops: DialectOps, queue_name: str, now: int, limit: int
) -> list[str]:
    """Remove and return up to `limit` due items: a claim that needs no lease (workers)."""
    params = {"_q": queue_name, "_now": now, "_limit": limit}
    return list(await conn.scalars(_claim_statement(ops, "take"), params))


async def lease(
    conn: AsyncConnection, ops: DialectOps, queue_name: str, now: int, limit: int, until: int
) -> list[str]:
    """Claim up to `limit` due items by pushing their due time to `until`: if the claimer
    dies, the items come due again then (at-least-once)."""
    params = {"_q": queue_name, "_now": now, "_limit": limit, "_until": until}
    return list(await conn.scalars(_claim_statement(ops, "lease"), params))


async def extend_lease(
    conn: AsyncConnection, queue_name: str, item_ids: Sequence[str], held_until: int, until: int
) -> list[str]:
    """Push the lease of items still held (due exactly when our lease said) to `until`; an
    item that was completed, re-queued or moved meanwhile is left alone. Returns the ids
    extended."""
    if not item_ids:
        return []
    stmt = (
        sa.update(queue)
        .where(
            queue.c.queue_name == queue_name,
            queue.c.due_at == held_until,
            queue.c.item_id.in_(item_ids),
        )
        .values(due_at=until)
        .returning(queue.c.item_id)
    )
    return list(await conn.scalars(stmt))


_NEXT_DUE = hot(
    sa.select(sa.func.min(queue.c.due_at)).where(queue.c.queue_name == sa.bindparam("_q"))
)


async def next_due(conn: AsyncConnection, queue_name: str) -> int | None:
    due: int | None = await conn.scalar(_NEXT_DUE, {"_q": queue_name})
    return due


async def queue_sizes(conn: AsyncConnection, names: Sequence[str] | None = None) -> dict[str, int]:
    query = sa.select(queue.c.queue_name, sa.func.count()).group_by(queue.c.queue_name)
    if names is not None:
        query = query.where(queue.c.queue_name.in_(names))
    return {row[0]: int(row[1]) for row in await conn.execute(query)}


# -- poll data and logs -----------------------------------------------------------------


async def record_poll(
    conn: AsyncConnection,
    ops: DialectOps,
    queue_name: str,
    domain: str | None,
    worker_id: str | None,
    now: int,
) -> None:
    stmt = ops.upsert_statement(
        poll_data, ["queue_name", "domain"], ["worker_id", "last_poll_time"]
    )
    row = {
        "queue_name": queue_name,
        "domain": domain or "",
        "worker_id": worker_id,
        "last_poll_time": now,
    }
    await conn.execute(stmt, row)


async def poll_data_for(conn: AsyncConnection, task_type: str | None) -> list[Json]:
    query = sa.select(poll_data).order_by(poll_data.c.queue_name, poll_data.c.domain)
    if task_type is not None:
        query = query.where(poll_data.c.queue_name == task_type)
    rows = await conn.execute(query)
    out: list[Json] = []
    for r in rows:
        item: Json = {"queueName": r.queue_name, "lastPollTime": r.last_poll_time}
        if r.domain:
            item["domain"] = r.domain
        if r.worker_id:
            item["workerId"] = r.worker_id
        out.append(item)
    return out


async def last_poll_times(
    conn: AsyncConnection, task_type: str, domains: Sequence[str]
) -> dict[str, int]:
    rows = await conn.execute(
        sa.select(poll_data.c.domain, poll_data.c.last_poll_time).where(
            poll_data.c.queue_name == task_type, poll_data.c.domain.in_(domains)
        )
    )
    return {r.domain: r.last_poll_time for r in rows}


async def add_logs(conn: AsyncConnection, entries: Sequence[tuple[str, str, int]]) -> None:
    if entries:
        await conn.execute(
            sa.insert(task_logs),
            [{"task_id": t, "log": log, "created_time": ts} for t, log, ts in entries],
        )


async def get_logs(conn: AsyncConnection, task_id: str) -> list[Json]:
    rows = await conn.execute(
        sa.select(task_logs.c.log, task_logs.c.created_time)
        .where(task_logs.c.task_id == task_id)
        .order_by(task_logs.c.id)
    )
    return [{"log": r.log, "taskId": task_id, "createdTime": r.created_time} for r in rows]


# -- processes waiting on a workflow (Postgres; see tables.waiters) -----------------------


async def add_waiter(
    conn: AsyncConnection, workflow_id: str, waiter_id: str, until_ms: int, now_ms: int
) -> None:
    """Register a wait; rows whose time has passed (a crashed process's) go on the way."""
    await conn.execute(sa.delete(waiters).where(waiters.c.until_ms < now_ms))
    await conn.execute(
        sa.insert(waiters).values(workflow_id=workflow_id, waiter_id=waiter_id, until_ms=until_ms)
    )


async def remove_waiter(conn: AsyncConnection, workflow_id: str, waiter_id: str) -> None:
    await conn.execute(
        sa.delete(waiters).where(
            waiters.c.workflow_id == workflow_id, waiters.c.waiter_id == waiter_id
        )
    )
