"""The executor: every change to a workflow happens here, inside one write transaction that
loads the workflow (locked on Postgres), applies the change, runs the decider until nothing
more happens, and writes the new state and the work it creates together.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeGuard, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from app.clock import Clock
from app.engine import decider, handoff
from app.engine.catalog import TaskDefCache, WorkflowDefCache
from app.engine.definition import DefIndex, index_for
from app.engine.expressions import SecretNotAvailable
from app.engine.model import (
    T_CANCELED,
    T_IN_PROGRESS,
    T_SCHEDULED,
    WF_FAILED,
    WF_RUNNING,
    WF_TERMINATED,
    WF_TIMED_OUT,
    Json,
    TaskRecord,
    WorkflowRecord,
    new_id,
)
from app.engine.notify import CHANNEL, Notifier, workflow_key
from app.engine.system import SYSTEM_QUEUE_PREFIX, SystemTasks, apply_outcome
from app.errors import BadRequest, Conflict, NotFound
from app.schemas.metadata import WorkflowDef
from app.secrets import masking
from app.store import executions as store
from app.store.db import Database, ReadsOnly, WriteNeedsTransaction
from app.tasks.base import TaskOutcome, WorkflowAwareTask

log = logging.getLogger("baton.engine")
T = TypeVar("T")
HandOff = list[tuple[str, TaskRecord, int]]  # (queue, task, leased until) per item

# A decide loop that has not settled after this many rounds is a definition bug (a loop
# of instant tasks); stopping keeps one workflow from holding the writer forever.
MAX_DECIDE_ROUNDS = 200
# Running workflows whose last written state this process keeps (Postgres, _remember).
RECENT_UNITS = 4096
# How long a domain counts as having live workers after their last poll (Conductor: 10 s).
ACTIVE_WORKER_MS = 10_000
# A wait's registration (watching) outlives its end by this much if its process dies first.
WAITER_GRACE_MS = 30_000


@dataclass
class Unit:
    """One workflow loaded for change inside a write transaction."""

    wf: WorkflowRecord
    definition_json: str
    index: DefIndex
    tasks: list[TaskRecord]
    new: list[TaskRecord] = field(default_factory=list)
    dirty: dict[str, TaskRecord] = field(default_factory=dict)
    queue_push: list[tuple[str, str, int, int]] = field(default_factory=list)
    queue_remove: list[str] = field(default_factory=list)
    notify: set[str] = field(default_factory=set)
    logs: list[tuple[str, str, int]] = field(default_factory=list)
    # A workflow being started: its row is inserted on save, with its first tasks.
    is_new: bool = False
    # Where _save records the items it wrote leased to this process's runner (None: none
    # are; only callers that hand them over after the commit pass a list).
    handoff: HandOff | None = None

    @property
    def definition(self) -> WorkflowDef:
        return self.index.definition

    def touch(self, task: TaskRecord) -> None:
        if all(t is not task for t in self.new):
            self.dirty[task.taskId] = task

    def task(self, task_id: str) -> TaskRecord | None:
        return next((t for t in self.tasks if t.taskId == task_id), None)


@dataclass
class StartRequest:
    name: str
    version: int | None = None
    input: Json = field(default_factory=dict)
    correlationId: str | None = None
    priority: int = 0
    taskToDomain: dict[str, str] = field(default_factory=dict)
    workflowDef: WorkflowDef | None = None
    idempotencyKey: str | None = None
    idempotencyStrategy: str | None = None
    createdBy: str | None = None
    parentWorkflowId: str | None = None
    parentWorkflowTaskId: str | None = None
    event: str | None = None
    workflowId: str | None = None


class _Changed(Exception):
    """A single-statement change found its workflow changed since it was read."""


class _NotThere(Exception):
    """The task is not in the workflow a task result named."""


class LocalRunner(Protocol):
    """The runner of this process, as the executor sees it for direct hand-offs."""

    lease_ms: int

    def reserve(self, name: str) -> bool: ...

    def release(self, name: str) -> None: ...

    def accept(self, name: str, item: str, until: int) -> bool: ...


def terminate_unit(unit: Unit, reason: str | None, now: int) -> None:
    """Cancel what is pending and end the workflow TERMINATED (no failure workflow)."""
    wf = unit.wf
    for task in unit.tasks:
        if not task.terminal:
            task.status = T_CANCELED
            task.endTime = now
            task.updateTime = now
            task.timeoutAt = None
            unit.touch(task)
            unit.queue_remove.append(task.taskId)
    wf.status = WF_TERMINATED
    wf.reasonForIncompletion = reason
    wf.endTime = now
    wf.timeoutAt = None
    state = decider.State(unit.definition, unit.index, wf, unit.tasks, now, lambda _n: None)
    wf.output = decider.workflow_output(state)


_WORKFLOW_AWARE: dict[type, bool] = {}


def _workflow_aware(impl: object) -> TypeGuard[WorkflowAwareTask]:
    # isinstance() against a runtime-checkable Protocol inspects every member per call.
    kind = type(impl)
    found = _WORKFLOW_AWARE.get(kind)
    if found is None:
        found = _WORKFLOW_AWARE[kind] = isinstance(impl, WorkflowAwareTask)
    return found


def queue_name(task: TaskRecord) -> str:
    if task.workflowTask.get("type", "SIMPLE") in decider.WORKER_TYPES:
        return f"{task.domain}:{task.taskType}" if task.domain else task.taskType
    return SYSTEM_QUEUE_PREFIX + task.taskType


class Executor:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        notifier: Notifier,
        task_defs: TaskDefCache | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.notifier = notifier
        self.task_defs = task_defs or TaskDefCache()
        self.workflow_defs = WorkflowDefCache()
        # Tasks loaded with their lease, until run_system_item takes them.
        self._leased: dict[str, TaskRecord] = {}
        self.system = SystemTasks(self)
        # Evaluates SWITCH/DO_WHILE JavaScript; installed by app.tasks.registry.
        self.evaluate_js: Callable[[str, Json], Any] | None = None
        # Where `${workflow.secrets.NAME}` values come from at hand-off (the secret service).
        self.secrets: handoff.SecretSource | None = None
        # The secret values this app knows, for masking what its API shows.
        self.masker = masking.Masker()
        # This process's runner while its loops run (set by Runner.start).
        self.local_runner: LocalRunner | None = None
        # Postgres: changes to a workflow in one statement when they can (change()), and
        # the state this process last wrote per running workflow, with its row version.
        self.single_statement_units = True
        self._recent: OrderedDict[str, tuple[str, Unit]] = OrderedDict()
        # Poll data is written at most this often per (queue, domain) and worker (settings).
        self.poll_data_interval_ms = 0
        self._polls_recorded: dict[tuple[str, str | None], tuple[int, str | None]] = {}

    # -- transactions ---------------------------------------------------------------------

    async def _load(self, conn: AsyncConnection, workflow_id: str) -> Unit:
        found = await store.load_unit(conn, self.db.ops, workflow_id, lock=True)
        if found is None:
            raise NotFound(f"No such workflow found by id: {workflow_id}")
        wf, definition_json, tasks = found
        return Unit(wf, definition_json, index_for(definition_json), tasks)

    async def _save(self, conn: AsyncConnection, unit: Unit, guard: str | None = None) -> bool:
        """Write the unit. On a single-statement connection (Postgres) this is the unit's
        one write; with `guard` it happens only if the workflow row is unchanged since it
        was read (False when it was changed meanwhile: nothing was written). On Postgres
        the state written is remembered with the row's new version (_remember)."""
        if isinstance(conn, ReadsOnly) and unit.logs:
            raise WriteNeedsTransaction  # the logs would be a second statement
        self._hand_off_locally(unit)
        notify = watch = None
        if unit.notify and self.db.dialect == "postgresql":
            # Queue wake-ups always go to the other processes (their long polls); this
            # workflow's own only when one of them waits on it (see watching()). Matched
            # exactly: a queue of a domain named "wf" looks like a workflow's name too.
            own = workflow_key(unit.wf.workflowId)
            queues = sorted(unit.notify - {own})
            if queues:
                notify = (CHANNEL, ",".join(queues))
            if own in unit.notify:
                watch = store.Watch(CHANNEL, own, [unit.wf.workflowId], self.clock.now_ms())
        written = await store.save_unit(
            conn,
            self.db.ops,
            unit.wf,
            new_definition=unit.definition_json if unit.is_new else None,
            new_tasks=unit.new,
            changed_tasks=list(unit.dirty.values()),
            removed=unit.queue_remove,
            pushed=unit.queue_push,
            notify=notify,
            watch=watch,
            final_of=unit,
            guard=guard,
        )
        unit.is_new = False
        await store.add_logs(conn, unit.logs)
        if written:
            self._remember(unit, written)
        return written is not None

    def _remember(self, unit: Unit, version: str) -> None:
        """Keep a running workflow's state as this process wrote it, so its next change can
        skip the read: its guarded write applies only if the row is still this version, so
        a state that went stale (another process, a rolled-back transaction) costs one retry,
        never a lost update. Not for workflows with worker tasks in flight: a poll changes
        their task rows without touching the workflow row."""
        recent = self._recent
        recent.pop(unit.wf.workflowId, None)
        if unit.wf.status != WF_RUNNING or any(
            not t.terminal and t.workflowTask.get("type", "SIMPLE") in decider.WORKER_TYPES
            for t in unit.tasks
        ):
            return
        recent[unit.wf.workflowId] = (version, unit)
        if len(recent) > RECENT_UNITS:
            recent.popitem(last=False)

    def _hand_off_locally(self, unit: Unit) -> None:
        """Write the system tasks this unit queues due now leased to this process's runner,
        while its lanes have room, and list them in unit.handoff for after the commit
        (runner module docstring). Their queue is then not woken: nobody else may take them."""
        runner, handoff = self.local_runner, unit.handoff
        if runner is None or handoff is None or not unit.queue_push:
            return
        now = self.clock.now_ms()
        until = now + runner.lease_ms
        pushes: list[tuple[str, str, int, int]] = []
        still_queued: set[str] = set()
        for name, item, due, priority in unit.queue_push:
            task = unit.task(item) if due <= now and self._runs_tasks(name) else None
            if task is not None and not task.terminal and runner.reserve(name):
                handoff.append((name, task, until))
                pushes.append((name, item, until, priority))
            else:
                pushes.append((name, item, due, priority))
                still_queued.add(name)
        unit.queue_push = pushes
        unit.notify -= {name for name, _, _ in handoff} - still_queued

    def _runs_tasks(self, name: str) -> bool:
        kind = name.removeprefix(SYSTEM_QUEUE_PREFIX)
        return name != kind and (kind in self.system.asynchronous or kind in self.system.sync)

    def _deliver(self, handoff: HandOff, committed: bool) -> None:
        """After the unit's transaction: start what it handed off, or give the slots back."""
        runner = self.local_runner
        for name, task, until in handoff:
            if runner is None:
                continue  # stopped meanwhile: the item comes due when its lease runs out
            if not committed:
                runner.release(name)
                continue
            # The runner gets its own copy: the unit's objects may be kept (_remember) and
            # must not see what a task's run does to its input.
            leased = copy.copy(task)
            leased.inputData = copy.deepcopy(task.inputData)
            self._leased[task.taskId] = leased
            if not runner.accept(name, task.taskId, until):
                self._leased.pop(task.taskId, None)
        handoff.clear()

    @asynccontextmanager
    async def _handing_off(self) -> AsyncIterator[HandOff]:
        """The list a unit records its hand-offs in; once the block ends they are started
        (it completed: committed) or their slots given back (it raised)."""
        handoff: HandOff = []
        try:
            yield handoff
        except BaseException:
            self._deliver(handoff, committed=False)
            raise
        self._deliver(handoff, committed=True)

    async def _write_handing_off(
        self, unit_of_work: Callable[[AsyncConnection, HandOff], Awaitable[T]]
    ) -> T:
        """db.run_write for a unit that may hand items off to this process's runner."""
        async with self._handing_off() as handoff:

            async def run(conn: AsyncConnection) -> T:
                self._deliver(handoff, committed=False)  # a unit run again starts afresh
                return await unit_of_work(conn, handoff)

            return await self.db.run_write(run)

    async def change(
        self,
        workflow_id: str | Callable[[AsyncConnection], Awaitable[str | None]],
        fn: Callable[[AsyncConnection, Unit, int], Awaitable[Any]],
        *,
        decide: bool = True,
    ) -> Any:
        """Load, change with `fn`, decide, save: one transaction, one workflow.

        `workflow_id` may be a lookup run inside the same transaction (by task id, say).
        On Postgres it runs as one guarded statement when it can (see _apply_change)."""
        # Twice at most: a remembered state that went stale is read afresh the second time.
        for _attempt in range(2 if self.single_statement_units else 0):
            if self.db.dialect != "postgresql":
                break
            try:
                async with self._handing_off() as handoff, self.db.single_statement_writes() as c:
                    result, unit = await self._apply_change(c, workflow_id, fn, decide, handoff)
                self.notifier.notify(unit.notify)
                return result
            except _Changed:
                continue
            except WriteNeedsTransaction:
                break
        # As a transaction, under the workflow's lock.

        async def unit_of_work(conn: AsyncConnection, handoff: HandOff) -> tuple[Any, Unit]:
            return await self._apply_change(conn, workflow_id, fn, decide, handoff)

        result, unit = await self._write_handing_off(unit_of_work)
        self.notifier.notify(unit.notify)
        return result

    async def _apply_change(
        self,
        conn: AsyncConnection,
        workflow_id: str | Callable[[AsyncConnection], Awaitable[str | None]],
        fn: Callable[[AsyncConnection, Unit, int], Awaitable[Any]],
        decide: bool,
        handoff: HandOff,
    ) -> tuple[Any, Unit]:
        """change()'s unit. In a transaction the workflow is loaded under its row lock. On a
        single-statement connection (Postgres) it is read without a lock, with its row
        version, and the one write at the end applies only if the row is still that version
        (two round trips instead of BEGIN, locked read, write, COMMIT); _Changed when
        another change came first, WriteNeedsTransaction when the unit would write anything
        else (a child workflow, logs...): nothing was written either way, and change() runs
        the unit again as a transaction."""
        wf_id = workflow_id if isinstance(workflow_id, str) else await workflow_id(conn)
        if wf_id is None:
            raise NotFound("No such workflow")
        version = None
        recent = None
        if isinstance(conn, ReadsOnly):
            recent = self._recent.pop(wf_id, None)
            if recent is not None:  # as this process last wrote it (_remember)
                version, last = recent
                unit = Unit(last.wf, last.definition_json, last.index, last.tasks)
            else:
                found = await store.peek_unit(conn, wf_id)
                if found is None:
                    raise NotFound(f"No such workflow found by id: {wf_id}")
                wf, definition_json, tasks, version = found
                unit = Unit(wf, definition_json, index_for(definition_json), tasks)
            conn.owner = unit
        else:
            unit = await self._load(conn, wf_id)
        unit.handoff = handoff
        now = self.clock.now_ms()
        try:
            result = await fn(conn, unit, now)
            if decide:
                await self._decide(conn, unit, now)
        except (WriteNeedsTransaction, _Changed):
            raise
        except Exception:
            if isinstance(conn, ReadsOnly) and recent is not None:
                # The kept state may be stale (another process changed the workflow): an
                # error found in it is checked again on a fresh read before it is answered.
                raise _Changed from None
            raise
        unit.wf.updateTime = now
        # Wakes anyone waiting on this workflow (the synchronous execute endpoint).
        unit.notify.add(workflow_key(wf_id))
        if not await self._save(conn, unit, guard=version):
            raise _Changed
        return result, unit

    # -- deciding -------------------------------------------------------------------------

    async def _decide(self, conn: AsyncConnection, unit: Unit, now: int) -> None:
        defs = await self.task_defs.snapshot(conn)
        for _ in range(MAX_DECIDE_ROUNDS):
            state = decider.State(
                definition=unit.definition,
                index=unit.index,
                workflow=unit.wf,
                tasks=unit.tasks,
                now=now,
                task_def=defs.get,
                evaluate_js=self.evaluate_js,
            )
            d = decider.decide(state)
            if d.empty:
                return
            for task in d.changed.values():
                unit.touch(task)
                if task.status == T_CANCELED:
                    unit.queue_remove.append(task.taskId)
            ran_sync = False
            for task in d.schedule:
                ran_sync |= await self._schedule(conn, unit, task, now)
            if d.status is not None:
                await self._end(conn, unit, d, now)
                return
            if not d.schedule and not ran_sync and not d.again:
                return
        log.error(
            "workflow %s did not settle after %d rounds", unit.wf.workflowId, MAX_DECIDE_ROUNDS
        )

    async def _schedule(
        self, conn: AsyncConnection, unit: Unit, task: TaskRecord, now: int
    ) -> bool:
        """Add a new task and create its work. True if it ran inline (sync system task)."""
        task.seq = len(unit.tasks) + 1
        unit.tasks.append(task)
        unit.new.append(task)
        task_type = task.workflowTask.get("type", "SIMPLE")
        if task_type in decider.WORKER_TYPES:
            task.domain = await self._domain_for(conn, unit.wf, task, now)
            due = now + (task.startDelayInSeconds + task.callbackAfterSeconds) * 1000
            name = queue_name(task)
            unit.queue_push.append((name, task.taskId, due, unit.wf.priority))
            unit.notify.add(name)
            return False
        return await self.system.start(conn, unit, task, now)

    async def _domain_for(
        self, conn: AsyncConnection, wf: WorkflowRecord, task: TaskRecord, now: int
    ) -> str | None:
        mapping = wf.taskToDomain
        spec = mapping.get(task.taskDefName) or mapping.get("*")
        if not spec:
            return None
        domains = [d.strip() for d in spec.split(",") if d.strip()]
        if not domains:
            return None
        # Conductor: the first domain with a live worker wins, else the last one listed.
        seen = await store.last_poll_times(conn, task.taskType, domains)
        chosen = next((d for d in domains if now - seen.get(d, 0) <= ACTIVE_WORKER_MS), domains[-1])
        return None if chosen == "NO_DOMAIN" else chosen

    async def _end(self, conn: AsyncConnection, unit: Unit, d: decider.Decision, now: int) -> None:
        wf = unit.wf
        assert d.status is not None
        wf.status = d.status
        wf.reasonForIncompletion = d.reason
        wf.output = d.output or {}
        wf.endTime = now
        wf.timeoutAt = None
        await self.system.terminate_children(conn, unit, d.reason or wf.status, now)
        self.system.child_ended(unit, now)
        if d.status in (WF_FAILED, WF_TIMED_OUT, WF_TERMINATED) and unit.definition.failureWorkflow:
            await self._start_failure_workflow(conn, unit, d, now)

    async def terminate_in(
        self, conn: AsyncConnection, workflow_id: str, reason: str | None, now: int
    ) -> None:
        """Terminate a workflow inside the caller's transaction (a parent taking its
        sub-workflow down). Its own children follow."""
        unit = await self._load(conn, workflow_id)
        if unit.wf.terminal:
            return
        terminate_unit(unit, reason, now)
        await self.system.terminate_children(conn, unit, reason or "terminated", now)
        await self._save(conn, unit)

    # -- system tasks run by the background runner -------------------------------------------

    async def lease_system(self, name: str, limit: int, lease_ms: int) -> list[str]:
        return await self.lease_until(name, limit, self.clock.now_ms() + lease_ms)

    async def lease_until(self, name: str, limit: int, until: int) -> list[str]:
        """Claim up to `limit` due items of a system queue until `until` (epoch ms)."""
        ids, _ = await self.claim(name, limit, until)
        return ids

    async def claim(self, name: str, limit: int, until: int) -> tuple[list[str], int | None]:
        """lease_until, plus the earliest due time left in the queue after the claim (the
        runner's next wake-up), read in the same transaction instead of a read of its own."""
        kind = name.removeprefix(SYSTEM_QUEUE_PREFIX)
        runs_tasks = kind in self.system.asynchronous or kind in self.system.sync

        async def unit_of_work(
            conn: AsyncConnection,
        ) -> tuple[list[str], list[TaskRecord], int | None]:
            now = self.clock.now_ms()
            ids = await store.lease(conn, self.db.ops, name, now, limit, until)
            # The tasks come with the claim: no read of its own per item afterwards.
            loaded = await store.load_tasks_by_id(conn, ids) if runs_tasks and ids else []
            return ids, loaded, await store.next_due(conn, name)

        ids, loaded, next_due = await self.db.run_write(unit_of_work)
        for task in loaded:
            self._leased[task.taskId] = task
        return ids, next_due

    def forget_leased(self, task_id: str) -> None:
        """A claimed item the caller will not run (it is running already)."""
        self._leased.pop(task_id, None)

    async def extend_leases(
        self, name: str, item_ids: list[str], held_until: int, until: int
    ) -> list[str]:
        async def unit_of_work(conn: AsyncConnection) -> list[str]:
            return await store.extend_lease(conn, name, item_ids, held_until, until)

        return await self.db.run_write(unit_of_work)

    async def run_system_item(
        self, name: str, task_id: str, *, done_working: Callable[[], None] | None = None
    ) -> None:
        """Run one claimed system-queue item: a timer that fired (WAIT), a child that ended
        (SUB_WORKFLOW), or an async task (HTTP, INLINE) executed outside any transaction.
        `done_working` is called once the task's own work is done, before its result is
        written (the runner counts only items at work against a queue's limit)."""
        kind = name.removeprefix(SYSTEM_QUEUE_PREFIX)
        queue_handler = self.system.queue_handlers.get(kind)
        if queue_handler is not None:  # an item that is not a task (event actions)
            await queue_handler(task_id)
            return

        async def workflow_of_task(conn: AsyncConnection) -> str | None:
            return await store.task_workflow_id(conn, task_id)

        if kind in ("WAIT", "SUB_WORKFLOW"):

            async def fire(conn: AsyncConnection, unit: Unit, now: int) -> None:
                unit.queue_remove.append(task_id)
                task = unit.task(task_id)
                if task is None or task.terminal:
                    return
                if kind == "WAIT":
                    apply_outcome(task, TaskOutcome.completed(dict(task.outputData)), now)
                    self.filter_output(unit, task, now)
                else:
                    await self.system.sync_from_child(conn, unit, task, now)
                unit.touch(task)

            await self._change_if_exists(task_id, workflow_of_task, fire)
            return
        impl = self.system.asynchronous.get(kind)
        # A sync type lands here only when its input needs secrets (see SystemTasks.start).
        sync_impl = self.system.sync.get(kind) if impl is None else None
        task = self._leased.pop(task_id, None) or await self._task_or_none(task_id)
        if (impl is None and sync_impl is None) or task is None or task.terminal:
            await self.db.run_write(lambda conn: store.remove_items(conn, [task_id]))
            return
        try:
            task_input, failure = await self._hand_off_input(task)
            if failure is not None:
                outcome = TaskOutcome.failed(failure, terminal=True)
            elif _workflow_aware(impl):
                run_as = await self._run_as(task.workflowInstanceId)
                outcome = await impl.execute_for(
                    task_input, workflow_id=task.workflowInstanceId, run_as=run_as
                )
            elif impl is not None:
                outcome = await impl.execute(task_input)
            else:
                assert sync_impl is not None
                outcome = sync_impl.execute(task_input)
        except Exception:  # a bug in a task must not kill the runner; the task fails
            log.exception("system task %s %s raised", kind, task_id)
            outcome = TaskOutcome.failed(f"{kind} task failed unexpectedly")
        if done_working is not None:
            done_working()

        # What a task produced under `_secrets` is a secret from now on (masked, scrubbed
        # from logs); every other part of the result, reasons and error texts included,
        # must not carry a known secret value into storage.
        self.masker.learn(masking.masked_leaves(outcome.output))
        if outcome.reason:
            outcome.reason = self.masker.text(outcome.reason)
        outcome.output = self.masker.scrub(outcome.output)

        async def apply(conn: AsyncConnection, unit: Unit, now: int) -> None:
            unit.queue_remove.append(task_id)
            current = unit.task(task_id)
            if current is None or current.terminal or unit.wf.terminal:
                return
            apply_outcome(current, outcome, now)
            self.filter_output(unit, current, now)
            if current.status == T_IN_PROGRESS and not outcome.wait_for_update:
                due = now + outcome.callback_after_seconds * 1000
                unit.queue_push.append((name, task_id, due, unit.wf.priority))
            unit.touch(current)

        await self._change_if_exists(task_id, task.workflowInstanceId, apply)

    async def _change_if_exists(
        self,
        item_id: str,
        workflow_of: str | Callable[[AsyncConnection], Awaitable[str | None]],
        fn: Callable[[AsyncConnection, Unit, int], Awaitable[Any]],
    ) -> None:
        try:
            await self.change(workflow_of, fn)
        except NotFound:
            # The task or its workflow was removed meanwhile: drop the stale queue item.
            await self.db.run_write(lambda conn: store.remove_items(conn, [item_id]))

    async def _task_or_none(self, task_id: str) -> TaskRecord | None:
        async with self.db.read() as conn:
            return await store.get_task(conn, task_id)

    # -- the edges of a task's run: secrets in, outputFilter out ----------------------------

    async def _run_as(self, workflow_id: str) -> str | None:
        async with self.db.read() as conn:
            found = await store.load_workflow(conn, self.db.ops, workflow_id, lock=False)
        return found[0].createdBy if found is not None else None

    async def _hand_off_input(self, task: TaskRecord) -> tuple[Json, str | None]:
        """The input to hand over, with secrets resolved just in time (never stored), or
        the reason the task must fail instead."""
        template = handoff.secret_template(task)
        if template is None:
            return task.inputData, None
        async with self.db.read() as conn:
            found = await store.load_workflow(
                conn, self.db.ops, task.workflowInstanceId, lock=False
            )
            tasks = await store.load_tasks(conn, task.workflowInstanceId) if found else []
        if found is None:
            return task.inputData, None  # the workflow is gone; the update will be dropped
        wf, definition_json = found
        index = index_for(definition_json)
        state = decider.State(
            index.definition, index, wf, tasks, self.clock.now_ms(), lambda _n: None
        )
        if self.secrets is None:
            return task.inputData, "Secrets are not available on this server"
        try:
            resolved, used = await handoff.resolve_secrets(
                task, template, decider.evaluation_context(state), self.secrets, wf.createdBy
            )
        except SecretNotAvailable as exc:
            return task.inputData, str(exc)
        self.masker.learn(used)
        return resolved, None

    def filter_output(self, unit: Unit, task: TaskRecord, now: int) -> None:
        """Apply the task's outputFilter once it has ended (see app/engine/handoff.py)."""
        if not task.terminal or handoff.output_filter_of(task) is None:
            return
        state = decider.State(
            unit.definition, unit.index, unit.wf, unit.tasks, now, lambda _n: None
        )
        handoff.apply_output_filter(task, decider.evaluation_context(state))
        self.masker.learn(masking.masked_leaves(task.outputData))

    async def _start_failure_workflow(
        self, conn: AsyncConnection, unit: Unit, d: decider.Decision, now: int
    ) -> None:
        wf = unit.wf
        name = unit.definition.failureWorkflow or ""
        if name.startswith("$workflow.input."):
            resolved = wf.input.get(name.removeprefix("$workflow.input."))
            name = resolved if isinstance(resolved, str) else ""
        if not name:
            return
        failed = {**wf.to_json(), "tasks": [t.to_json() for t in unit.tasks]}
        failure_input: Json = {
            **wf.input,
            "workflowId": wf.workflowId,
            "reason": d.reason,
            "failureStatus": d.status,
            "failedWorkflow": failed,
        }
        if d.failed_task is not None:
            failure_input["failureTaskId"] = d.failed_task.taskId
        request = StartRequest(
            name=name,
            version=unit.definition.failureWorkflowVersion,
            input=failure_input,
            correlationId=wf.correlationId,
            taskToDomain=wf.taskToDomain,
            createdBy=wf.createdBy,
        )
        try:
            child_id, notify = await self._start_in(conn, request, now)
            unit.notify |= notify
            wf.output["conductor.failure_workflow"] = child_id
        except (NotFound, BadRequest, Conflict) as exc:
            wf.output["conductor.failure_workflow"] = (
                f"Error starting failure workflow: {exc.message}"
            )

    # -- starting -------------------------------------------------------------------------

    async def start(self, request: StartRequest) -> str:
        async def unit_of_work(conn: AsyncConnection, handoff: HandOff) -> tuple[str, set[str]]:
            return await self._start_in(conn, request, self.clock.now_ms(), handoff)

        if self.single_statement_units and self.db.dialect == "postgresql":
            with contextlib.suppress(WriteNeedsTransaction):
                return await self._start_in_one_statement(request)
        workflow_id, notify = await self._write_handing_off(unit_of_work)
        self.notifier.notify(notify)
        return workflow_id

    async def _start_in_one_statement(self, request: StartRequest) -> str:
        """start() on Postgres as one INSERT statement, without BEGIN and COMMIT round trips,
        when everything it does before that only reads (see _apply_change). An
        idempotency key needs its check and the insert in one transaction: not here."""
        if request.idempotencyKey:
            raise WriteNeedsTransaction
        async with self._handing_off() as handoff, self.db.single_statement_writes() as conn:
            workflow_id, notify = await self._start_in(
                conn, request, self.clock.now_ms(), handoff, owns_connection=True
            )
        self.notifier.notify(notify)
        return workflow_id

    async def _definition_for(
        self, conn: AsyncConnection, request: StartRequest
    ) -> tuple[WorkflowDef, str]:
        """The definition to start, and the JSON text the workflow keeps of it."""
        if request.workflowDef is not None:
            definition = request.workflowDef
            return definition, json.dumps(definition.to_json(), separators=(",", ":"))
        found = await self.workflow_defs.get(conn, request.name, request.version)
        if found is None:
            shown = "null" if request.version is None else str(request.version)
            raise NotFound(f"No such workflow found by name: {request.name}, version: {shown}")
        return found

    async def _start_in(
        self,
        conn: AsyncConnection,
        request: StartRequest,
        now: int,
        handoff: HandOff | None = None,
        *,
        owns_connection: bool = False,
    ) -> tuple[str, set[str]]:
        if not 0 <= request.priority <= 99:
            raise BadRequest("priority: Priority must be between 0 and 99")
        definition, definition_json = await self._definition_for(conn, request)
        assert definition.name is not None
        if request.idempotencyKey:
            existing = await store.find_by_idempotency_key(
                conn, definition.name, request.idempotencyKey
            )
            if existing is not None:
                strategy = request.idempotencyStrategy or "FAIL"
                if strategy == "RETURN_EXISTING":
                    return existing.workflowId, set()
                if strategy == "FAIL" or not existing.terminal:
                    raise Conflict(
                        f"Workflow with idempotency key {request.idempotencyKey} already exists: "
                        f"{existing.workflowId}"
                    )
                # FAIL_ON_RUNNING and the earlier run has ended: the key moves to the new run.
                existing.idempotencyKey = None
                await store.save_workflow(conn, existing)
        workflow_input = dict(request.input)
        if workflow_input:
            for key, value in definition.inputTemplate.items():
                workflow_input.setdefault(key, copy.deepcopy(value))
        wf = WorkflowRecord(
            workflowId=request.workflowId or new_id(),
            workflowName=definition.name,
            workflowVersion=definition.version,
            status=WF_RUNNING,
            input=workflow_input,
            variables=copy.deepcopy(definition.variables),
            correlationId=request.correlationId,
            priority=request.priority,
            taskToDomain=dict(request.taskToDomain),
            createTime=now,
            updateTime=now,
            parentWorkflowId=request.parentWorkflowId,
            parentWorkflowTaskId=request.parentWorkflowTaskId,
            createdBy=request.createdBy,
            idempotencyKey=request.idempotencyKey,
            event=request.event,
        )
        wf.timeoutAt = decider.workflow_deadline(wf, definition)
        unit = Unit(wf, definition_json, index_for(definition_json), [], is_new=True)
        unit.handoff = handoff
        if owns_connection and isinstance(conn, ReadsOnly):
            conn.owner = unit  # this workflow's insert is the one write of the unit
        await self._decide(conn, unit, now)
        await self._save(conn, unit)
        return wf.workflowId, unit.notify

    # -- workers --------------------------------------------------------------------------

    async def poll(
        self, task_type: str, worker_id: str | None, domain: str | None, count: int
    ) -> list[TaskRecord]:
        """Claim up to `count` due tasks of a type (in a domain) for one worker."""
        name = f"{domain}:{task_type}" if domain else task_type

        async def unit_of_work(conn: AsyncConnection) -> list[TaskRecord]:
            now = self.clock.now_ms()
            if self._poll_data_due(task_type, domain, worker_id, now):
                await store.record_poll(conn, self.db.ops, task_type, domain, worker_id, now)
            allowed = await self._allowed(conn, task_type, count, now)
            if allowed <= 0:
                return []
            ids = await store.take(conn, self.db.ops, name, now, allowed)
            claimed: list[TaskRecord] = []
            for task in await store.load_tasks_by_id(conn, ids):
                if task.status != T_SCHEDULED:
                    continue  # cancelled or already claimed: the message was stale
                task.status = T_IN_PROGRESS
                task.pollCount += 1
                task.startTime = task.startTime or now
                task.updateTime = now
                task.workerId = worker_id
                task.callbackAfterSeconds = 0
                decider.refresh_timeout(task)
                claimed.append(task)
            written = await store.update_tasks_if_status(conn, self.db.ops, claimed, T_SCHEDULED)
            return [task for task in claimed if task.taskId in written]

        claimed = await self.db.run_write(unit_of_work)
        return await self._hand_off_polled(claimed)

    def _poll_data_due(
        self, task_type: str, domain: str | None, worker_id: str | None, now: int
    ) -> bool:
        """Whether this poll is written to poll data: the first poll of a (queue, domain),
        a new worker, or the interval since this process last wrote it has passed."""
        key = (task_type, domain)
        last = self._polls_recorded.get(key)
        if last is not None and last[1] == worker_id and now - last[0] < self.poll_data_interval_ms:
            return False
        self._polls_recorded[key] = (now, worker_id)
        return True

    async def _hand_off_polled(self, claimed: list[TaskRecord]) -> list[TaskRecord]:
        """Workers get real secret values; a task whose secret cannot be read fails
        terminally instead of reaching the worker."""
        handed: list[TaskRecord] = []
        for task in claimed:
            try:
                task_input, failure = await self._hand_off_input(task)
            except Exception:  # one task's trouble must not strand the rest of the batch
                log.exception("handing task %s to a worker failed", task.taskId)
                task_input, failure = task.inputData, "Secrets could not be resolved"
            if failure is None:
                task.inputData = task_input  # this copy only goes to the worker
                handed.append(task)
                continue
            await self.update_task(
                {
                    "taskId": task.taskId,
                    "workflowInstanceId": task.workflowInstanceId,
                    "status": "FAILED_WITH_TERMINAL_ERROR",
                    "reasonForIncompletion": failure,
                }
            )
        return handed

    async def _allowed(self, conn: AsyncConnection, task_type: str, count: int, now: int) -> int:
        """Apply the TaskDef's concurrency and rate limits to how many may be claimed now."""
        td = (await self.task_defs.get_many(conn, [task_type])).get(task_type)
        if td is None:
            return count
        if td.concurrentExecLimit:
            running = await store.count_in_progress(conn, task_type)
            count = min(count, td.concurrentExecLimit - running)
        if td.rateLimitPerFrequency > 0:
            # The window is the last N seconds, (now - N s, now]: a start exactly N s ago
            # has left it.
            since = now - td.rateLimitFrequencyInSeconds * 1000 + 1
            started = await store.count_started_since(conn, task_type, since)
            count = min(count, td.rateLimitPerFrequency - started)
        return count

    async def update_task(self, result: Json) -> TaskRecord | None:
        """Apply a TaskResult. Returns the task as updated (None when it was ignored)."""
        task_id = result["taskId"]

        async def workflow_of_task(conn: AsyncConnection) -> str:
            workflow_id = await store.task_workflow_id(conn, task_id)
            if workflow_id is None:
                raise NotFound(f"No such task found by id: {task_id}")
            return workflow_id

        async def apply(conn: AsyncConnection, unit: Unit, now: int) -> TaskRecord | None:
            task = unit.task(task_id)
            if task is None:
                raise NotFound(f"No such task found by id: {task_id}")
            for entry in result.get("logs") or []:
                if isinstance(entry, dict) and entry.get("log") is not None:
                    unit.logs.append(
                        (task_id, str(entry["log"]), int(entry.get("createdTime") or now))
                    )
            if task.terminal or unit.wf.terminal:
                return None
            if result.get("extendLease"):
                task.updateTime = now
                decider.refresh_timeout(task)
                unit.touch(task)
                return task
            self.masker.learn(masking.masked_leaves(result.get("outputData")))
            decider.apply_task_result(task, result, now)
            self.filter_output(unit, task, now)
            is_worker = task.workflowTask.get("type", "SIMPLE") in decider.WORKER_TYPES
            if task.status == T_IN_PROGRESS and is_worker:
                # Conductor's callback pattern: the worker asks to see the task again later.
                task.status = T_SCHEDULED
                due = now + task.callbackAfterSeconds * 1000
                unit.queue_push.append((queue_name(task), task.taskId, due, unit.wf.priority))
                unit.notify.add(queue_name(task))
                decider.refresh_timeout(task)
            elif task.terminal:
                unit.queue_remove.append(task.taskId)
            unit.touch(task)
            return task

        # The result names its workflow (Conductor's TaskResult requires it): load that one
        # directly, and look the task up only when the guess is wrong (a round trip fewer
        # per update on Postgres).
        given = result.get("workflowInstanceId")
        if isinstance(given, str) and given:

            async def apply_if_there(conn: AsyncConnection, unit: Unit, now: int) -> Any:
                if unit.task(task_id) is None:
                    raise _NotThere
                return await apply(conn, unit, now)

            try:
                found: TaskRecord | None = await self.change(given, apply_if_there)
                return found
            except (_NotThere, NotFound):
                pass
        updated: TaskRecord | None = await self.change(workflow_of_task, apply)
        return updated

    # -- timers ---------------------------------------------------------------------------

    async def sweep(self, limit: int = 100) -> int:
        """Re-decide workflows whose timers ran out. Returns how many were decided."""
        async with self.db.read() as conn:
            ids = await store.due_workflow_ids(conn, self.clock.now_ms(), limit)
        for workflow_id in ids:
            await self.decide(workflow_id)
        return len(ids)

    async def decide(self, workflow_id: str) -> None:
        async def nothing(_conn: AsyncConnection, _unit: Unit, _now: int) -> None:
            return None

        await self.change(workflow_id, nothing)

    @asynccontextmanager
    async def watching(self, workflow_id: str, seconds: float) -> AsyncIterator[str]:
        """For a caller that waits up to `seconds` on a workflow's changes: yields the
        notifier name to wait on. On Postgres the wait is registered (waiters) while it
        lasts, so that changes made by other processes send the workflow's wake-up to
        them; changes nobody waits on send none (NOTIFY serialises commits)."""
        key = workflow_key(workflow_id)
        if self.db.dialect != "postgresql":
            yield key
            return
        waiter_id = new_id()
        now = self.clock.now_ms()
        until = now + int(seconds * 1000) + WAITER_GRACE_MS

        async def add(conn: AsyncConnection) -> None:
            await store.add_waiter(conn, workflow_id, waiter_id, until, now)

        async def remove(conn: AsyncConnection) -> None:
            await store.remove_waiter(conn, workflow_id, waiter_id)

        await self.db.run_write(add)
        try:
            yield key
        finally:
            try:
                await self.db.run_write(remove)
            except Exception:  # the row is ignored once its time has passed
                log.warning("could not remove the wait on workflow %s", workflow_id)

    # -- reads ----------------------------------------------------------------------------

    async def get_workflow(self, workflow_id: str, include_tasks: bool) -> Json:
        async with self.db.read() as conn:
            found = await store.load_workflow(conn, self.db.ops, workflow_id, lock=False)
            if found is None:
                raise NotFound(f"No such workflow found by id: {workflow_id}")
            wf, definition_json = found
            tasks = await store.load_tasks(conn, workflow_id) if include_tasks else []
        return workflow_json(wf, definition_json, tasks)

    async def get_task(self, task_id: str) -> TaskRecord:
        async with self.db.read() as conn:
            task = await store.get_task(conn, task_id)
        if task is None:
            raise NotFound(f"Task not found for taskId: {task_id}")
        return task


def workflow_json(wf: WorkflowRecord, definition_json: str, tasks: list[TaskRecord]) -> Json:
    out = wf.to_json()
    out["tasks"] = [t.to_json() for t in tasks]
    out["workflowDefinition"] = json.loads(definition_json)
    return out
