"""Repository functions for schedules and their execution records. Each takes an open
connection, so the caller decides the transaction (firing inserts the record and starts the
workflow in one)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from app.engine.model import WF_PAUSED, WF_RUNNING
from app.store.dialects import DialectOps
from app.store.tables import schedule_executions, schedules, workflows

Row = dict[str, Any]

_ACTIVE = (WF_RUNNING, WF_PAUSED)

# The columns a schedule view needs: the row plus the status of its last run's workflow.
_VIEW = sa.select(schedules, workflows.c.status.label("last_status")).outerjoin(
    workflows, workflows.c.workflow_id == schedules.c.last_workflow_id
)


def _row(row: Any) -> Row:
    out = dict(row._mapping)
    out["body"] = dict(out["body"])
    return out


# -- schedules --------------------------------------------------------------------------


async def get_schedule(conn: AsyncConnection, name: str) -> Row | None:
    row = (await conn.execute(_VIEW.where(schedules.c.name == name))).first()
    return _row(row) if row is not None else None


async def lock_schedule(
    conn: AsyncConnection, ops: DialectOps, name: str, *, skip_locked: bool = False
) -> Row | None:
    """The schedule row, locked for this transaction (Postgres). With `skip_locked`, None
    when another process holds it: that process is firing it."""
    query = sa.select(schedules).where(schedules.c.name == name)
    query = ops.skip_locked(query) if skip_locked else ops.lock_rows(query)
    row = (await conn.execute(query)).first()
    return _row(row) if row is not None else None


async def list_schedules(conn: AsyncConnection, workflow_name: str | None = None) -> list[Row]:
    query = _VIEW.order_by(schedules.c.name)
    if workflow_name:
        query = query.where(schedules.c.workflow_name == workflow_name)
    return [_row(r) for r in await conn.execute(query)]


@dataclass(frozen=True)
class ScheduleFilter:
    workflow_name: str | None = None
    name_contains: str | None = None
    paused: bool | None = None
    free_text: str | None = None


_SCHEDULE_SORT = {
    "name": schedules.c.name,
    "workflowName": schedules.c.workflow_name,
    "nextRunTime": schedules.c.next_run_time,
    "createTime": schedules.c.created_at,
    "updatedTime": schedules.c.updated_at,
}
SCHEDULE_SORT_FIELDS = frozenset(_SCHEDULE_SORT)


def _order(
    columns: Mapping[str, sa.ColumnElement[Any]], sort: Sequence[tuple[str, bool]], tiebreak: Any
) -> list[Any]:
    order: list[Any] = [columns[f].desc() if desc else columns[f].asc() for f, desc in sort]
    order.append(tiebreak)
    return order


async def search_schedules(
    conn: AsyncConnection,
    where: ScheduleFilter,
    start: int,
    size: int,
    sort: Sequence[tuple[str, bool]],
) -> tuple[int, list[Row]]:
    conds: list[Any] = []
    if where.workflow_name:
        conds.append(schedules.c.workflow_name == where.workflow_name)
    if where.name_contains:
        conds.append(schedules.c.name.contains(where.name_contains, autoescape=True))
    if where.paused is not None:
        conds.append(schedules.c.paused == where.paused)
    if where.free_text:
        text = where.free_text.lower()
        conds.append(
            sa.or_(
                sa.func.lower(schedules.c.name).contains(text, autoescape=True),
                sa.func.lower(schedules.c.workflow_name).contains(text, autoescape=True),
            )
        )
    total = await conn.scalar(sa.select(sa.func.count()).select_from(schedules).where(*conds))
    query = (
        _VIEW.where(*conds)
        .order_by(*_order(_SCHEDULE_SORT, sort, schedules.c.name))
        .offset(start)
        .limit(size)
    )
    return int(total or 0), [_row(r) for r in await conn.execute(query)]


async def insert_schedule(conn: AsyncConnection, values: Row) -> None:
    await conn.execute(sa.insert(schedules).values(values))


async def update_schedule(conn: AsyncConnection, name: str, **values: Any) -> bool:
    result = await conn.execute(
        sa.update(schedules).where(schedules.c.name == name).values(**values)
    )
    return result.rowcount > 0


async def delete_schedule(conn: AsyncConnection, name: str) -> bool:
    await conn.execute(
        sa.delete(schedule_executions).where(schedule_executions.c.schedule_name == name)
    )
    result = await conn.execute(sa.delete(schedules).where(schedules.c.name == name))
    return result.rowcount > 0


async def due_schedule_names(conn: AsyncConnection, now: int, limit: int) -> list[str]:
    """Unpaused schedules with a slot due, or with a buffered slot whose previous run has
    ended; the most overdue first."""
    buffered_ready = sa.and_(
        schedules.c.buffered_slot.is_not(None),
        sa.or_(workflows.c.status.is_(None), workflows.c.status.not_in(_ACTIVE)),
    )
    query = (
        sa.select(schedules.c.name)
        .outerjoin(workflows, workflows.c.workflow_id == schedules.c.last_workflow_id)
        .where(
            schedules.c.paused.is_(False),
            sa.or_(schedules.c.next_run_time <= now, buffered_ready),
        )
        .order_by(sa.func.coalesce(schedules.c.next_run_time, 0), schedules.c.name)
        .limit(limit)
    )
    return list(await conn.scalars(query))


async def earliest_next_run(conn: AsyncConnection) -> int | None:
    value = await conn.scalar(
        sa.select(sa.func.min(schedules.c.next_run_time)).where(schedules.c.paused.is_(False))
    )
    return int(value) if value is not None else None


async def workflow_active(conn: AsyncConnection, workflow_id: str | None) -> bool:
    """Whether the workflow is still running (or paused): the overlap policies' test."""
    if workflow_id is None:
        return False
    status = await conn.scalar(
        sa.select(workflows.c.status).where(workflows.c.workflow_id == workflow_id)
    )
    return status in _ACTIVE


# -- execution records ------------------------------------------------------------------


async def claim_slot(conn: AsyncConnection, ops: DialectOps, record: Row) -> bool:
    """Insert an execution record; False when (schedule, slot) is already taken. On
    Postgres a concurrent insert of the same slot waits for the other transaction and then
    finds the row, so exactly one of them gets True."""
    insert = postgresql.insert if ops.name == "postgresql" else sqlite.insert
    stmt = (
        insert(schedule_executions)
        .values(record)
        .on_conflict_do_nothing(index_elements=["schedule_name", "slot_time"])
    )
    result = await conn.execute(stmt)
    return result.rowcount > 0


async def insert_execution(conn: AsyncConnection, record: Row) -> None:
    await conn.execute(sa.insert(schedule_executions).values(record))


async def update_execution(conn: AsyncConnection, execution_id: str, **values: Any) -> None:
    await conn.execute(
        sa.update(schedule_executions)
        .where(schedule_executions.c.execution_id == execution_id)
        .values(**values)
    )


@dataclass(frozen=True)
class ExecutionFilter:
    schedule_names: tuple[str, ...] = ()
    states: tuple[str, ...] = ()
    scheduled_after: int | None = None
    scheduled_before: int | None = None
    workflow_name: str | None = None
    execution_id: str | None = None
    # A substring of the schedule name, workflow name, execution id or workflow id.
    free_text: str | None = None


_EXECUTION_SORT = {
    "scheduledTime": schedule_executions.c.scheduled_time,
    "executionTime": schedule_executions.c.execution_time,
    "executionId": schedule_executions.c.execution_id,
    "scheduleName": schedule_executions.c.schedule_name,
    "workflowName": schedule_executions.c.workflow_name,
    "workflowType": schedule_executions.c.workflow_name,
    "state": schedule_executions.c.state,
    "status": schedule_executions.c.state,
}
EXECUTION_SORT_FIELDS = frozenset(_EXECUTION_SORT)


async def search_executions(
    conn: AsyncConnection,
    where: ExecutionFilter,
    start: int,
    size: int,
    sort: Sequence[tuple[str, bool]],
) -> tuple[int, list[Row]]:
    t = schedule_executions
    conds: list[Any] = []
    if where.schedule_names:
        conds.append(t.c.schedule_name.in_(where.schedule_names))
    if where.states:
        conds.append(t.c.state.in_(where.states))
    if where.scheduled_after is not None:
        conds.append(t.c.scheduled_time > where.scheduled_after)
    if where.scheduled_before is not None:
        conds.append(t.c.scheduled_time < where.scheduled_before)
    if where.workflow_name:
        conds.append(t.c.workflow_name == where.workflow_name)
    if where.execution_id:
        conds.append(t.c.execution_id == where.execution_id)
    if where.free_text:
        text = where.free_text
        conds.append(
            sa.or_(
                *(
                    c.contains(text, autoescape=True)
                    for c in (
                        t.c.schedule_name,
                        t.c.workflow_name,
                        t.c.execution_id,
                        t.c.workflow_id,
                    )
                )
            )
        )
    total = await conn.scalar(sa.select(sa.func.count()).select_from(t).where(*conds))
    # Newest first unless asked otherwise: the history a user looks at.
    order = sort or [("scheduledTime", True)]
    query = (
        sa.select(t.c.doc)
        .where(*conds)
        .order_by(*_order(_EXECUTION_SORT, order, t.c.execution_id))
        .offset(start)
        .limit(size)
    )
    return int(total or 0), [dict(d) for d in await conn.scalars(query)]


async def prune_executions(conn: AsyncConnection, older_than: int | None, keep: int | None) -> int:
    """Delete records executed before `older_than`, and all but the newest `keep` of each
    schedule. Returns how many went."""
    t = schedule_executions
    removed = 0
    if older_than is not None:
        result = await conn.execute(sa.delete(t).where(t.c.execution_time < older_than))
        removed += result.rowcount
    if keep is not None:
        crowded = await conn.scalars(
            sa.select(t.c.schedule_name).group_by(t.c.schedule_name).having(sa.func.count() > keep)
        )
        for name in list(crowded):
            newest = (
                sa.select(t.c.execution_id)
                .where(t.c.schedule_name == name)
                .order_by(t.c.scheduled_time.desc(), t.c.execution_id.desc())
                .limit(keep)
            )
            result = await conn.execute(
                sa.delete(t).where(t.c.schedule_name == name, t.c.execution_id.not_in(newest))
            )
            removed += result.rowcount
    return removed
