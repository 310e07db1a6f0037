"""Schedules (Orkes' scheduler API) and firing them.

The schedules table is the source of truth; APScheduler (timer.py) only decides when this
process looks at it. Firing one slot is one write transaction: lock the schedule row (other
processes skip it), insert the execution record under the unique (schedule, slot) key,
start the workflow, store the next slot. Whatever the timing between processes, a slot's
record can be inserted once, so it starts one workflow. A start that fails (unknown
workflow, idempotency conflict, ...) rolls back and is recorded FAILED in a second
transaction.

Runtime semantics follow Orkes/OSS (reference section 5.6):
- an overdue slot fires once, late, with its own `_scheduledTime`; the slots missed before
  `now` are skipped unless `runCatchupScheduleInstances`, which replays each of them;
- saving and resuming compute the next slot from now, so slots missed while paused never run;
- `scheduleStartTime`/`scheduleEndTime` are inclusive bounds; past the end a schedule stays
  but never fires again.

Baton adds `overlapPolicy` (ALLOW as Orkes, SKIP, BUFFER_ONE), run-now, lastRunTime and
lastRunStatus, and the `baton_scheduler_slots_total{schedule,outcome}` counter.
"""

from __future__ import annotations

import logging
import re
import traceback
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy.ext.asyncio import AsyncConnection

from app.clock import Clock
from app.engine.executor import Executor, StartRequest
from app.errors import BadRequest, BatonError, FieldError, NotFound, ValidationFailed
from app.scheduler.cron import (
    CronError,
    CronExpression,
    ZoneError,
    next_few_ms,
    next_fire_ms,
    parse,
    validate_zone,
)
from app.schemas.scheduler import BulkResult, SaveScheduleRequest, ScheduleStartRequest, TagObject
from app.store import scheduler as repo
from app.store.db import Database

log = logging.getLogger("baton.scheduler")

Json = dict[str, Any]

ORG_ID = "0000"
# Orkes' limits for the preview endpoint.
PREVIEW_DEFAULT = 3
PREVIEW_MAX = 5
# Slots handled per pass, and passes chained before the timer takes over again: a long
# catch-up goes on in the next pass instead of holding the loop.
BATCH = 100
MAX_ROUNDS = 10
# Missed slots are counted for the metric up to this many per late firing.
MISSED_COUNT_CAP = 1000
REASON_MAX = 999
STACK_MAX = 2000
MAX_SEARCH_SIZE = 1000
# Names travel in paths and in the execution query's `scheduleName IN (a,b)` lists.
_NAME = re.compile(r"^[^\s/,()]{1,255}$")


# -- metrics ----------------------------------------------------------------------------

_COUNTERS: weakref.WeakKeyDictionary[CollectorRegistry, Counter] = weakref.WeakKeyDictionary()


def slots_counter(registry: CollectorRegistry) -> Counter:
    """The slot counter in `registry`, created once (an app's lifespan may run again)."""
    counter = _COUNTERS.get(registry)
    if counter is None:
        counter = Counter(
            "baton_scheduler_slots",
            "Schedule slots by outcome: fired, failed (the start failed), skipped and "
            "buffered (overlapPolicy), missed (passed over after downtime)",
            ["schedule", "outcome"],
            registry=registry,
        )
        _COUNTERS[registry] = counter
    return counter


# -- crons ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cron:
    expression: CronExpression
    zone: ZoneInfo
    label: str  # "<cron> <zoneId>", injected as _schedulerCron


@dataclass(frozen=True)
class Crons:
    """A schedule's crons: `cronSchedules` when given (each with its own zone), else the one
    `cronExpression`. The next slot is the earliest any of them gives."""

    crons: tuple[_Cron, ...]

    def next_after(self, after_ms: int) -> int | None:
        slots = [next_fire_ms(c.expression, after_ms, c.zone) for c in self.crons]
        found = [s for s in slots if s is not None]
        return min(found) if found else None

    def label_for(self, slot: int) -> str:
        for c in self.crons:
            if next_fire_ms(c.expression, slot - 1, c.zone) == slot:
                return c.label
        return self.crons[0].label

    def count_between(self, after_ms: int, until_ms: int, cap: int) -> int:
        """Slots in (after_ms, until_ms], counted up to `cap`."""
        seen: set[int] = set()
        for c in self.crons:
            seen.update(next_few_ms(c.expression, after_ms, c.zone, cap, end_ms=until_ms))
        return min(len(seen), cap)


def _one_cron(expr: str | None, zone_id: str | None) -> _Cron:
    try:
        expression = parse(expr or "")
    except CronError as exc:  # its message names the cron (the SDK keys off "cron")
        raise BadRequest(str(exc)) from None
    try:
        zone = validate_zone(zone_id)
    except ZoneError as exc:
        # Orkes' clients turn a 400 mentioning "cron" into InvalidCronExpression: a bad zone
        # makes the cron schedule unusable just the same.
        raise BadRequest(f"Invalid zoneId for the cron schedule: {exc}") from None
    return _Cron(expression, zone, f"{expr} {zone_id or 'UTC'}")


def crons_of(body: Json) -> Crons:
    listed = body.get("cronSchedules") or []
    if listed:
        return Crons(tuple(_one_cron(c.get("cronExpression"), c.get("zoneId")) for c in listed))
    return Crons((_one_cron(body.get("cronExpression"), body.get("zoneId")),))


def first_slot(crons: Crons, body: Json, now: int) -> int | None:
    """The next slot from now, within the bounds (a slot exactly at the start counts)."""
    after = now
    start = body.get("scheduleStartTime")
    if start is not None:
        after = max(after, start - 1)
    return _bounded(crons.next_after(after), body)


def _bounded(slot: int | None, body: Json) -> int | None:
    end = body.get("scheduleEndTime")
    if slot is None or (end is not None and slot > end):
        return None
    return slot


def after_firing(crons: Crons, body: Json, slot: int, now: int) -> tuple[int | None, int]:
    """(the slot after `slot`, how many slots were passed over). Without catch-up the slots
    already gone by (before now) are skipped; a slot due this very millisecond is not."""
    if body.get("runCatchupScheduleInstances"):
        return _bounded(crons.next_after(slot), body), 0
    after = max(now - 1, slot)
    missed = crons.count_between(slot, after, MISSED_COUNT_CAP) if after > slot else 0
    return _bounded(crons.next_after(after), body), missed


# -- views ------------------------------------------------------------------------------


def schedule_view(row: Json) -> Json:
    """Orkes' WorkflowSchedule, with Baton's overlapPolicy / lastRunTime / lastRunStatus."""
    body = row["body"]
    last_status: str | None = None
    if row.get("last_run_time") is not None:
        # A run whose start failed has no workflow: its status is FAILED.
        last_status = row.get("last_status") if row.get("last_workflow_id") else "FAILED"
    return {
        "name": row["name"],
        "description": body.get("description"),
        "cronExpression": body.get("cronExpression"),
        "zoneId": body.get("zoneId") or "UTC",
        "paused": bool(row["paused"]),
        "pausedReason": body.get("pausedReason"),
        "runCatchupScheduleInstances": bool(body.get("runCatchupScheduleInstances")),
        "scheduleStartTime": body.get("scheduleStartTime"),
        "scheduleEndTime": body.get("scheduleEndTime"),
        "startWorkflowRequest": body["startWorkflowRequest"],
        "createTime": row["created_at"],
        "updatedTime": row["updated_at"],
        "createdBy": body.get("createdBy"),
        "updatedBy": body.get("updatedBy"),
        "tags": body.get("tags") or [],
        "orgId": ORG_ID,
        "queueMsgId": row["name"],
        "nextRunTime": row.get("next_run_time"),
        "cronSchedules": body.get("cronSchedules"),
        "overlapPolicy": body.get("overlapPolicy") or "ALLOW",
        "lastRunTime": row.get("last_run_time"),
        "lastRunStatus": last_status,
    }


def _not_found(name: str) -> NotFound:
    return NotFound(f"Schedule '{name}' not found")


def _has_secrets(value: Any) -> bool:
    if isinstance(value, dict):
        return any(k == "_secrets" or _has_secrets(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_secrets(v) for v in value)
    return False


def _schedule_errors(req: SaveScheduleRequest) -> list[FieldError]:
    errors: list[FieldError] = []
    if not req.name:
        errors.append(FieldError("name", "Schedule name cannot be empty"))
    elif not _NAME.match(req.name):
        errors.append(
            FieldError(
                "name",
                "Schedule name must be at most 255 characters without whitespace, '/', ',', "
                "'(' or ')'",
                req.name,
            )
        )
    swr = req.startWorkflowRequest
    if swr is None:
        errors.append(FieldError("startWorkflowRequest", "startWorkflowRequest cannot be null"))
    else:
        if not swr.name:
            errors.append(
                FieldError("startWorkflowRequest.name", "Workflow name cannot be null or empty")
            )
        if swr.priority is not None and not 0 <= swr.priority <= 99:
            errors.append(
                FieldError(
                    "startWorkflowRequest.priority",
                    "Priority must be between 0 and 99",
                    swr.priority,
                )
            )
        if _has_secrets(swr.input):
            # Schedules are stored and shown as they are; secrets belong in the secret
            # store, referenced as ${workflow.secrets.NAME}.
            errors.append(
                FieldError(
                    "startWorkflowRequest.input",
                    "A schedule's input cannot hold _secrets; reference a secret with "
                    "${workflow.secrets.NAME} instead",
                )
            )
    start, end = req.scheduleStartTime, req.scheduleEndTime
    if start is not None and end is not None and end < start:
        errors.append(
            FieldError("scheduleEndTime", "scheduleEndTime must not be before scheduleStartTime")
        )
    return errors


def _trim(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit]


# -- search parameters ------------------------------------------------------------------


def parse_sort(sort: Iterable[str], allowed: frozenset[str]) -> list[tuple[str, bool]]:
    """`field` or `field:ASC|DESC`, several repeated or joined by `|` or `,`."""
    out: list[tuple[str, bool]] = []
    for item in sort:
        for part in re.split(r"[|,]", item):
            part = part.strip()
            if not part:
                continue
            name, _, direction = part.partition(":")
            direction = direction.strip().upper() or "ASC"
            if name not in allowed or direction not in ("ASC", "DESC"):
                raise BadRequest(
                    f"Invalid sort '{part}': use field[:ASC|DESC] with a field among "
                    f"{', '.join(sorted(allowed))}"
                )
            out.append((name, direction == "DESC"))
    return out


def _csv(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def parse_execution_query(query: str | None, free_text: str | None) -> repo.ExecutionFilter:
    """The OSS SchedulerSearchQuery grammar the Orkes UI produces: clauses joined by ` AND `;
    `scheduleName IN (a,b)`, `state IN (POLLED,EXECUTED)`, `scheduledTime>ms`,
    `scheduledTime<ms`, `workflowName=x`, `executionId=y`; any other clause is a schedule
    name. `*` or nothing matches every record."""
    names: list[str] = []
    states: list[str] = []
    after: int | None = None
    before: int | None = None
    workflow_name: str | None = None
    execution_id: str | None = None
    for raw in re.split(r"\s+AND\s+", (query or "").strip()):
        clause = raw.strip()
        if clause in ("", "*"):
            continue
        if clause.startswith("scheduleName IN (") and clause.endswith(")"):
            names.extend(_csv(clause[len("scheduleName IN (") : -1]))
        elif clause.startswith("state IN (") and clause.endswith(")"):
            states.extend(s.upper() for s in _csv(clause[len("state IN (") : -1]))
        elif clause.startswith(("scheduledTime>", "scheduledTime<")):
            value = clause[len("scheduledTime>") :].strip()
            try:
                ms = int(value)
            except ValueError:
                raise BadRequest(
                    f"Invalid search query: '{clause}' needs epoch milliseconds"
                ) from None
            if clause[len("scheduledTime")] == ">":
                after = ms
            else:
                before = ms
        elif clause.startswith("workflowName="):
            workflow_name = clause[len("workflowName=") :].strip()
        elif clause.startswith("executionId="):
            execution_id = clause[len("executionId=") :].strip()
        else:
            names.append(clause)
    text = (free_text or "").strip()
    return repo.ExecutionFilter(
        schedule_names=tuple(names),
        states=tuple(states),
        scheduled_after=after,
        scheduled_before=before,
        workflow_name=workflow_name or None,
        execution_id=execution_id or None,
        free_text=None if text in ("", "*") else text,
    )


# -- firing -----------------------------------------------------------------------------


@dataclass
class _Outcome:
    # fired, failed, skipped or buffered; None when there was nothing to do here
    outcome: str | None
    missed: int = 0
    notify: set[str] = field(default_factory=set)
    record: Json | None = None


@dataclass
class _Slot:
    """One slot about to start: what the failure path needs after a rollback."""

    row: Json
    slot: int | None  # None for run-now
    updates: Json
    missed: int = 0


class _StartFailed(Exception):
    def __init__(self, slot: _Slot, record: Json, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.slot = slot
        self.record = record
        self.cause = cause


class SchedulerService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        executor: Executor,
        registry: CollectorRegistry | None = None,
        *,
        retention_days: int = 0,
        retention_per_schedule: int = 0,
    ) -> None:
        self.db = db
        self.clock = clock
        self.executor = executor
        self.slots = slots_counter(registry or CollectorRegistry())
        self.retention_days = retention_days
        self.retention_per_schedule = retention_per_schedule
        # Called after every change to a schedule, so the timer re-arms at once.
        self.on_change: Callable[[], None] = lambda: None
        # GET /admin/pause: this process stops firing (others on the database go on).
        self.instance_paused = False

    # -- definitions ----------------------------------------------------------------------

    async def save(self, req: SaveScheduleRequest, user: str | None) -> Json:
        errors = _schedule_errors(req)
        if errors:
            raise ValidationFailed(errors)
        assert req.name is not None and req.startWorkflowRequest is not None
        name = req.name
        swr = req.startWorkflowRequest.model_copy(
            update={"priority": req.startWorkflowRequest.priority or 0}
        )
        body: Json = {
            "description": req.description,
            "cronExpression": req.cronExpression,
            "zoneId": req.zoneId or "UTC",
            "runCatchupScheduleInstances": bool(req.runCatchupScheduleInstances),
            "scheduleStartTime": req.scheduleStartTime,
            "scheduleEndTime": req.scheduleEndTime,
            "startWorkflowRequest": swr.to_json(),
            "cronSchedules": [c.to_json() for c in req.cronSchedules]
            if req.cronSchedules
            else None,
            "overlapPolicy": req.overlapPolicy or "ALLOW",
        }
        crons = crons_of(body)  # 400 naming the cron before anything is written
        paused = bool(req.paused)
        now = self.clock.now_ms()

        async def unit(conn: AsyncConnection) -> Json:
            existing = await repo.lock_schedule(conn, self.db.ops, name)
            if existing is None:
                body.update(createdBy=user, updatedBy=user, pausedReason=None)
                body["tags"] = _tags_json(req.tags or [])
            else:
                old = existing["body"]
                # Orkes keeps the creator: the workflow keeps running as them.
                body.update(createdBy=old.get("createdBy"), updatedBy=user)
                body["pausedReason"] = old.get("pausedReason") if paused else None
                # The SDK's save request has no tags: leaving them out keeps them.
                kept = old.get("tags") or []
                body["tags"] = kept if req.tags is None else _tags_json(req.tags)
            values: Json = {
                "workflow_name": swr.name,
                "paused": paused,
                "next_run_time": None if paused else first_slot(crons, body, now),
                "buffered_slot": None,
                "body": body,
                "updated_at": now,
            }
            if existing is None:
                await repo.insert_schedule(conn, {"name": name, "created_at": now, **values})
            else:
                await repo.update_schedule(conn, name, **values)
            saved = await repo.get_schedule(conn, name)
            assert saved is not None
            return schedule_view(saved)

        try:
            view = await self.db.run_write(unit)
        except sa.exc.IntegrityError:
            # Another request created the same name at the same moment: update it instead.
            view = await self.db.run_write(unit)
        self.on_change()
        return view

    async def get(self, name: str) -> Json:
        async with self.db.read() as conn:
            row = await repo.get_schedule(conn, name)
        if row is None:
            raise _not_found(name)
        return schedule_view(row)

    async def list_schedules(self, workflow_name: str | None = None) -> list[Json]:
        async with self.db.read() as conn:
            rows = await repo.list_schedules(conn, workflow_name)
        return [schedule_view(r) for r in rows]

    async def search(
        self,
        *,
        workflow_name: str | None,
        name: str | None,
        paused: bool | None,
        free_text: str | None,
        start: int,
        size: int,
        sort: Sequence[str],
    ) -> Json:
        order = parse_sort(sort, repo.SCHEDULE_SORT_FIELDS)
        text = (free_text or "").strip()
        where = repo.ScheduleFilter(
            workflow_name=workflow_name or None,
            name_contains=name or None,
            paused=paused,
            free_text=None if text in ("", "*") else text,
        )
        async with self.db.read() as conn:
            total, rows = await repo.search_schedules(
                conn, where, start, min(size, MAX_SEARCH_SIZE), order
            )
        return {"totalHits": total, "results": [schedule_view(r) for r in rows]}

    async def delete(self, name: str) -> None:
        """Orkes and OSS answer 200 for a missing name too."""

        async def unit(conn: AsyncConnection) -> bool:
            # Locking first waits out a firing in progress in another process.
            if await repo.lock_schedule(conn, self.db.ops, name) is None:
                return False
            return await repo.delete_schedule(conn, name)

        if await self.db.run_write(unit):
            self.on_change()

    async def pause(self, name: str, reason: str | None, user: str | None) -> None:
        async def unit(conn: AsyncConnection) -> None:
            row = await repo.lock_schedule(conn, self.db.ops, name)
            if row is None:
                raise _not_found(name)
            body = row["body"]
            if reason is not None or not row["paused"]:
                body["pausedReason"] = reason
            body["updatedBy"] = user
            await repo.update_schedule(
                conn,
                name,
                paused=True,
                next_run_time=None,
                buffered_slot=None,
                body=body,
                updated_at=self.clock.now_ms(),
            )

        await self.db.run_write(unit)
        self.on_change()

    async def resume(self, name: str, user: str | None) -> None:
        """Computes the next slot from now: slots missed while paused never run."""

        async def unit(conn: AsyncConnection) -> None:
            row = await repo.lock_schedule(conn, self.db.ops, name)
            if row is None or not row["paused"]:
                raise _not_found(name)
            body = row["body"]
            body.update(pausedReason=None, updatedBy=user)
            now = self.clock.now_ms()
            await repo.update_schedule(
                conn,
                name,
                paused=False,
                next_run_time=first_slot(crons_of(body), body, now),
                body=body,
                updated_at=now,
            )

        await self.db.run_write(unit)
        self.on_change()

    async def bulk(self, names: list[str], pause: bool, user: str | None) -> Json:
        result = BulkResult()
        for name in names:
            try:
                if pause:
                    await self.pause(name, None, user)
                else:
                    await self.resume(name, user)
            except BatonError as exc:
                result.bulkErrorResults[name] = exc.message
            else:
                result.bulkSuccessfulResults.append(name)
        return result.model_dump()

    # -- tags -----------------------------------------------------------------------------

    async def get_tags(self, name: str) -> list[Json]:
        tags: list[Json] = (await self.get(name))["tags"]
        return tags

    async def put_tags(self, name: str, tags: list[TagObject]) -> None:
        """Adds tags; a key already there gets the new value (Orkes: PUT upserts by key)."""

        def change(current: list[Json]) -> list[Json]:
            merged = {t["key"]: t for t in current}
            merged.update({t["key"]: t for t in _tags_json(tags)})
            return list(merged.values())

        await self._change_tags(name, change)

    async def delete_tags(self, name: str, tags: list[TagObject]) -> None:
        gone = {(t["key"], t["value"]) for t in _tags_json(tags)}

        def change(current: list[Json]) -> list[Json]:
            return [t for t in current if (t["key"], t["value"]) not in gone]

        await self._change_tags(name, change)

    async def _change_tags(self, name: str, change: Callable[[list[Json]], list[Json]]) -> None:
        async def unit(conn: AsyncConnection) -> None:
            row = await repo.lock_schedule(conn, self.db.ops, name)
            if row is None:
                raise _not_found(name)
            body = row["body"]
            body["tags"] = change(body.get("tags") or [])
            await repo.update_schedule(conn, name, body=body)

        await self.db.run_write(unit)

    async def by_tags(self, tags: Sequence[str]) -> list[Json]:
        """Schedules carrying any of the `key:value` tags."""
        wanted = set()
        for tag in tags:
            key, sep, value = tag.partition(":")
            if not sep or not key:
                raise BadRequest(f"Invalid tag '{tag}': use key:value")
            wanted.add((key, value))
        return [
            s
            for s in await self.list_schedules()
            if any((t.get("key"), t.get("value")) in wanted for t in s["tags"])
        ]

    # -- preview --------------------------------------------------------------------------

    def next_few(
        self,
        cron: str,
        start: int | None,
        end: int | None,
        limit: int | None,
        zone_id: str | None = None,
    ) -> list[int]:
        """The next slots of a cron (at most 5), from now or the start time, up to the end
        time. Orkes computes in UTC only; `zoneId` is Baton's addition."""
        parsed = _one_cron(cron, zone_id)
        count = min(PREVIEW_DEFAULT if limit is None else limit, PREVIEW_MAX)
        after = self.clock.now_ms()
        if start is not None:
            after = max(after, start - 1)
        return next_few_ms(parsed.expression, after, parsed.zone, count, end_ms=end)

    # -- execution records ----------------------------------------------------------------

    async def search_executions(
        self,
        query: str | None,
        free_text: str | None,
        start: int,
        size: int,
        sort: Sequence[str],
    ) -> Json:
        where = parse_execution_query(query, free_text)
        order = parse_sort(sort, repo.EXECUTION_SORT_FIELDS)
        async with self.db.read() as conn:
            total, docs = await repo.search_executions(
                conn, where, start, min(size, MAX_SEARCH_SIZE), order
            )
        return {"totalHits": total, "results": docs}

    async def prune(self) -> int:
        """Drop execution records past the retention settings."""
        if not self.retention_days and not self.retention_per_schedule:
            return 0
        older = None
        if self.retention_days:
            older = self.clock.now_ms() - self.retention_days * 86_400_000
        keep = self.retention_per_schedule or None

        async def unit(conn: AsyncConnection) -> int:
            return await repo.prune_executions(conn, older, keep)

        return await self.db.run_write(unit)

    # -- firing ---------------------------------------------------------------------------

    def pause_instance(self) -> None:
        self.instance_paused = True

    def resume_instance(self) -> None:
        self.instance_paused = False
        self.on_change()

    async def next_wake_ms(self) -> int | None:
        """The earliest slot of any active schedule (the timer sleeps until then)."""
        async with self.db.read() as conn:
            return await repo.earliest_next_run(conn)

    async def fire_due(self) -> int:
        """Handle every slot due by now (start, or skip/buffer by overlap policy); returns
        how many were handled here. Several processes may run this at once: each slot goes
        to one of them."""
        if self.instance_paused:
            return 0
        done = 0
        for _ in range(MAX_ROUNDS):
            async with self.db.read() as conn:
                names = await repo.due_schedule_names(conn, self.clock.now_ms(), BATCH)
            progressed = 0
            for name in names:
                if self.instance_paused:
                    return done
                if (await self._fire(name)).outcome is not None:
                    progressed += 1
            done += progressed
            if not progressed:
                break
        return done

    async def run_now(self, name: str, user: str | None) -> Json:
        """Start the schedule's workflow now, whatever its cron, pause or overlap policy.
        The record has no slot (it takes none from the cron) and the workflow runs as the
        caller. A start that fails is recorded FAILED and answered with its error."""

        async def unit(conn: AsyncConnection) -> _Outcome:
            row = await repo.lock_schedule(conn, self.db.ops, name)
            if row is None:
                raise _not_found(name)
            now = self.clock.now_ms()
            return await self._start(conn, _Slot(row, None, {}), now, user)

        try:
            result = await self.db.run_write(unit)
        except _StartFailed as failed:
            await self._record_failure(failed)
            if isinstance(failed.cause, BatonError):
                raise failed.cause from None
            raise
        self.executor.notifier.notify(result.notify)
        self._count(name, result)
        assert result.record is not None
        return result.record

    async def _fire(self, name: str) -> _Outcome:
        now = self.clock.now_ms()

        async def unit(conn: AsyncConnection) -> _Outcome:
            row = await repo.lock_schedule(conn, self.db.ops, name, skip_locked=True)
            if row is None or row["paused"]:
                return _Outcome(None)
            body = row["body"]
            buffered = row["buffered_slot"]
            policy = body.get("overlapPolicy") or "ALLOW"
            busy = policy != "ALLOW" and await repo.workflow_active(conn, row["last_workflow_id"])
            if buffered is not None and not busy:
                # BUFFER_ONE: the slot held back starts now that the previous run ended.
                return await self._start(conn, _Slot(row, buffered, {"buffered_slot": None}), now)
            slot = row["next_run_time"]
            if slot is None or slot > now:
                return _Outcome(None)
            nxt, missed = after_firing(crons_of(body), body, slot, now)
            updates: Json = {"next_run_time": nxt}
            if busy:
                outcome = "skipped"
                if policy == "BUFFER_ONE" and buffered is None:
                    updates["buffered_slot"] = slot
                    outcome = "buffered"
                await repo.update_schedule(conn, name, **updates)
                return _Outcome(outcome, missed)
            return await self._start(conn, _Slot(row, slot, updates, missed), now)

        try:
            result = await self.db.run_write(unit)
        except _StartFailed as failed:
            result = await self._record_failure(failed)
        except Exception:
            # The database is away or a bug: the slot stays due and the next pass retries.
            log.exception("firing schedule %s failed", name)
            return _Outcome(None)
        self.executor.notifier.notify(result.notify)
        self._count(name, result)
        return result

    def _record(self, slot: _Slot, execution_id: str, now: int, request: Json) -> Json:
        row = slot.row
        return {
            "executionId": execution_id,
            "scheduleName": row["name"],
            "scheduledTime": now if slot.slot is None else slot.slot,
            "executionTime": now,
            "workflowName": row["workflow_name"],
            "workflowId": None,
            "startWorkflowRequest": request,
            "state": "POLLED",
            "zoneId": row["body"].get("zoneId") or "UTC",
            "orgId": ORG_ID,
        }

    async def _start(
        self, conn: AsyncConnection, slot: _Slot, now: int, user: str | None = None
    ) -> _Outcome:
        """Claim the slot and start the workflow, in the caller's transaction."""
        row, body = slot.row, slot.row["body"]
        execution_id = str(uuid.uuid4())
        crons = crons_of(body)
        scheduled = now if slot.slot is None else slot.slot
        swr = ScheduleStartRequest.model_validate(body["startWorkflowRequest"])
        workflow_input = {
            **(swr.input or {}),
            "_startedByScheduler": row["name"],
            "_scheduledTime": scheduled,
            "_executedTime": now,
            "_executionId": execution_id,
            "_schedulerCron": crons.label_for(scheduled) if slot.slot else crons.crons[0].label,
        }
        request = swr.model_copy(update={"input": workflow_input})
        record = self._record(slot, execution_id, now, request.to_json())
        claimed = await repo.claim_slot(conn, self.db.ops, _columns(record, slot.slot))
        if not claimed:
            # Another process started this slot: only move on to the next one.
            await repo.update_schedule(conn, row["name"], **slot.updates)
            return _Outcome(None)
        start = StartRequest(
            name=swr.name or row["workflow_name"],
            version=swr.version,
            input=workflow_input,
            correlationId=swr.correlationId,
            priority=swr.priority or 0,
            taskToDomain=dict(swr.taskToDomain or {}),
            idempotencyKey=swr.idempotencyKey,
            idempotencyStrategy=swr.idempotencyStrategy,
            # A schedule runs as whoever saved, paused or resumed it last: editing someone
            # else's schedule must not borrow their access (their secrets, say).
            createdBy=user if slot.slot is None else body.get("updatedBy") or body.get("createdBy"),
        )
        try:
            workflow_id, notify = await self.executor._start_in(conn, start, now)
        except Exception as exc:
            raise _StartFailed(slot, record, exc) from exc
        record.update(workflowId=workflow_id, state="EXECUTED")
        await repo.update_execution(
            conn, execution_id, state="EXECUTED", workflow_id=workflow_id, doc=record
        )
        await repo.update_schedule(
            conn, row["name"], last_run_time=now, last_workflow_id=workflow_id, **slot.updates
        )
        return _Outcome("fired", slot.missed, notify, record)

    async def _record_failure(self, failed: _StartFailed) -> _Outcome:
        """After the start's transaction rolled back: record the slot FAILED and move on,
        unless the schedule changed meanwhile (deleted, paused, saved, or another process
        took the slot)."""
        slot, cause = failed.slot, failed.cause
        name = slot.row["name"]
        now = failed.record["executionTime"]
        reason = cause.message if isinstance(cause, BatonError) else str(cause)
        if not isinstance(cause, BatonError):
            log.error("starting the workflow of schedule %s failed", name, exc_info=cause)
        stack = "".join(traceback.format_exception(cause))

        async def unit(conn: AsyncConnection) -> _Outcome:
            row = await repo.lock_schedule(conn, self.db.ops, name)
            if row is None:
                return _Outcome(None)
            if slot.slot is not None:
                current = (row["next_run_time"], row["buffered_slot"])
                before = (slot.row["next_run_time"], slot.row["buffered_slot"])
                if row["paused"] or current != before:
                    return _Outcome(None)
            record = {
                **failed.record,
                "state": "FAILED",
                "reason": _trim(reason, REASON_MAX),
                "stackTrace": _trim(stack, STACK_MAX),
            }
            if not await repo.claim_slot(conn, self.db.ops, _columns(record, slot.slot)):
                await repo.update_schedule(conn, name, **slot.updates)
                return _Outcome(None)
            await repo.update_schedule(
                conn, name, last_run_time=now, last_workflow_id=None, **slot.updates
            )
            return _Outcome("failed", slot.missed, record=record)

        return await self.db.run_write(unit)

    def _count(self, name: str, result: _Outcome) -> None:
        if result.outcome is not None:
            self.slots.labels(name, result.outcome).inc()
        if result.missed:
            self.slots.labels(name, "missed").inc(result.missed)


def _tags_json(tags: Iterable[TagObject]) -> list[Json]:
    return [t.to_json() for t in tags if t.key]


def _columns(record: Json, slot: int | None) -> Json:
    return {
        "execution_id": record["executionId"],
        "schedule_name": record["scheduleName"],
        "scheduled_time": record["scheduledTime"],
        "slot_time": slot,
        "execution_time": record["executionTime"],
        "workflow_name": record["workflowName"],
        "workflow_id": record.get("workflowId"),
        "state": record["state"],
        "doc": record,
    }
