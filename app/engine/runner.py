"""Background loops of one Baton process: the timer sweep (task and workflow timeouts) and
one loop per system queue (HTTP, INLINE, WAIT timers, SUB_WORKFLOW completions).

A system-queue loop claims due items with a lease (another process, or this one after a
crash, gets them again only once the lease runs out), runs them concurrently up to a limit,
and sleeps until woken by new work, the next due time, or a bounded recheck. Every loop
stops promptly on shutdown.

Direct hand-off: a transaction of this process that queues a system task due now may write
the item already leased to this runner (see Executor._hand_off_locally) when the queue's
lane has a free slot; once it commits, the runner starts the item at once. That skips a
claim transaction and a wake-up per step; the item is as durable as a claimed one (if this
process dies, the item comes due when the lease runs out).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from dataclasses import dataclass, field

from app.engine.executor import Executor
from app.store import executions as store

log = logging.getLogger("baton.runner")

# An item whose runner died (kill -9, a lost host) is run again after this long
# (at-least-once); a live runner extends the leases of what it is running every RENEW_S, so
# a long HTTP call is not run twice.
LEASE_MS = 5_000
RENEW_S = 1.5
# Without a wake-up, a loop looks at its queue at least this often.
RECHECK_S = 1.0
CONCURRENCY = {"_sys:HTTP": 64, "_sys:INLINE": 4}
DEFAULT_CONCURRENCY = 16


@dataclass
class _Lane:
    """What one queue loop is running: items in flight, the lease each holds, and slots
    promised to transactions that hand items off directly (reserved from the SQLite writer
    thread too, hence the lock).

    The limit bounds items at work (an HTTP call under way), not items writing their result:
    an item whose work is done gives its slot back before its result's transaction, so the
    successor that transaction hands off can take it. Otherwise, with as many workflows as
    slots, every hand-off would find the lane full and go through the queue."""

    limit: int
    inflight: set[asyncio.Task[None]] = field(default_factory=set)
    finishing: set[asyncio.Task[None]] = field(default_factory=set)  # work done, writing
    held: dict[str, int] = field(default_factory=dict)  # item -> the due time our lease gave it
    reserved: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def free(self) -> int:
        working = len(self.inflight) - len(self.finishing)
        # Items still writing their results count too, up to a second `limit` of them: a
        # database that stalls must not let finished calls pile up without bound.
        return min(self.limit - working, 2 * self.limit - len(self.inflight)) - self.reserved

    def done_working(self) -> None:
        task = asyncio.current_task()
        if task is not None and task in self.inflight:
            with self.lock:
                self.finishing.add(task)


class Runner:
    lease_ms = LEASE_MS

    def __init__(self, executor: Executor, *, sweep_interval_s: float) -> None:
        self.executor = executor
        self.sweep_interval_s = sweep_interval_s
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._lanes: dict[str, _Lane] = {}

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._sweep_loop(), name="baton-sweep"))
        for name in self.executor.system.runner_queues:
            lane = self._lanes[name] = _Lane(CONCURRENCY.get(name, DEFAULT_CONCURRENCY))
            self._tasks.append(
                asyncio.create_task(self._queue_loop(name, lane), name=f"baton-{name}")
            )
        self.executor.local_runner = self

    async def stop(self) -> None:
        if self.executor.local_runner is self:
            self.executor.local_runner = None
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._lanes.clear()

    # -- direct hand-off (see the module docstring) -----------------------------------------

    def reserve(self, name: str) -> bool:
        """Promise a slot of `name`'s lane to an item a transaction is about to write leased
        to us; False when the lane is full or not running. Safe from any thread."""
        lane = self._lanes.get(name)
        if lane is None or self._stopping.is_set():
            return False
        with lane.lock:
            if lane.free() <= 0:
                return False
            lane.reserved += 1
            return True

    def release(self, name: str) -> None:
        """A reserved slot whose transaction did not commit."""
        lane = self._lanes.get(name)
        if lane is not None:
            with lane.lock:
                lane.reserved -= 1

    def accept(self, name: str, item: str, until: int) -> bool:
        """Run an item that a committed transaction wrote leased to us until `until`. False
        when it is not started here (the lane is gone, or runs the item already)."""
        lane = self._lanes.get(name)
        if lane is None:
            return False
        with lane.lock:
            lane.reserved -= 1
        if item in lane.held or self._stopping.is_set():
            return False
        self._launch(name, lane, item, until)
        return True

    def _launch(self, name: str, lane: _Lane, item: str, until: int) -> None:
        lane.held[item] = until
        task = asyncio.create_task(self._run(name, lane, item))
        lane.inflight.add(task)
        task.add_done_callback(functools.partial(_finished, lane))
        task.add_done_callback(functools.partial(_release, lane.held, item))

    async def drain(self, max_rounds: int = 100) -> int:
        """Run every due system-queue item now, one at a time, until none is left (tests
        drive time by hand and call this instead of running the loops). Returns the count."""
        done = 0
        for _ in range(max_rounds):
            claimed = 0
            for name in self.executor.system.runner_queues:
                for item in await self.executor.lease_system(name, 100, LEASE_MS):
                    await self.executor.run_system_item(name, item)
                    claimed += 1
            done += claimed
            if not claimed:
                break
        return done

    async def _sweep_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                # A full batch means more are due: go again at once.
                while await self.executor.sweep() >= 100:
                    pass
            except Exception:  # the loop must outlive a bad workflow or a database blip
                log.exception("timer sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.sweep_interval_s)

    async def _queue_loop(self, name: str, lane: _Lane) -> None:
        held = lane.held
        renewer = asyncio.create_task(self._renew_loop(name, held), name=f"baton-renew-{name}")
        try:
            while not self._stopping.is_set():
                free = lane.free()
                claimed: list[str] = []
                next_due: int | None = None
                known_due = False
                seen = self.executor.notifier.generation(name)
                if free > 0:
                    until = self.executor.clock.now_ms() + LEASE_MS
                    try:
                        claimed, next_due = await self.executor.claim(name, free, until)
                        known_due = True
                    except Exception:  # a database blip must not end the loop
                        log.exception("claiming from %s failed", name)
                    # An item this loop still runs (its lease ran out under load and it
                    # was claimed again) is not started a second time; its lease is ours.
                    fresh = [item for item in claimed if item not in held]
                    for item in claimed:
                        if item in held:
                            self.executor.forget_leased(item)
                        held[item] = until
                    claimed = fresh
                for item in claimed:
                    self._launch(name, lane, item, held[item])
                # Full (hand-offs may fill the lane too): wait for a slot to free up.
                if lane.inflight and (free <= 0 or (claimed and len(claimed) == free)):
                    await asyncio.wait(lane.inflight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                wait_s = self._wait_for(next_due) if known_due else await self._idle_wait(name)
                await self.executor.notifier.wait(name, wait_s, since=seen)
        finally:
            renewer.cancel()
            for task in lane.inflight:
                task.cancel()

    async def _renew_loop(self, name: str, held: dict[str, int]) -> None:
        """Keep the leases of running items alive (one statement per distinct lease)."""
        while True:
            await asyncio.sleep(RENEW_S)
            until = self.executor.clock.now_ms() + LEASE_MS
            by_lease: dict[int, list[str]] = {}
            for item, held_until in list(held.items()):
                by_lease.setdefault(held_until, []).append(item)
            for held_until, items in by_lease.items():
                try:
                    renewed = await self.executor.extend_leases(name, items, held_until, until)
                except Exception:  # the next round tries again, well inside the lease
                    log.exception("renewing leases on %s failed", name)
                    continue
                for item in renewed:
                    if item in held:
                        held[item] = until

    async def _idle_wait(self, name: str) -> float:
        """Seconds until the next item of `name` comes due, capped by the recheck interval."""
        try:
            async with self.executor.db.read() as conn:
                due = await store.next_due(conn, name)
        except Exception:
            return RECHECK_S
        return self._wait_for(due)

    def _wait_for(self, due: int | None) -> float:
        if due is None:
            return RECHECK_S
        # At least a few ms: an item due now but held by another process must not spin us.
        wait_ms = max(due - self.executor.clock.now_ms(), 5)
        return min(RECHECK_S, wait_ms / 1000)

    async def _run(self, name: str, lane: _Lane, item: str) -> None:
        try:
            await self.executor.run_system_item(name, item, done_working=lane.done_working)
        except Exception:  # one failing item must not stop the others
            log.exception("running %s item %s failed", name, item)


def _finished(lane: _Lane, task: asyncio.Task[None]) -> None:
    with lane.lock:
        lane.inflight.discard(task)
        lane.finishing.discard(task)


def _release(held: dict[str, int], item: str, _task: asyncio.Task[None]) -> None:
    held.pop(item, None)
