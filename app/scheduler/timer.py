"""When this process looks for due schedules: APScheduler's AsyncIOScheduler as a timer only.

Two jobs: `wake`, a one-off re-armed after every pass (and every change to a schedule) for
the earliest nextRunTime in the table, and `rescan`, every few seconds, which also sees
changes made by other processes and BUFFER_ONE slots whose previous run has ended. The jobs
only kick a pass; the pass itself runs as a task of this timer, one at a time, so stopping
waits for a transaction in flight instead of cancelling it halfway.

APScheduler's own job stores are not used for schedules: they cannot be shared between
processes, and the schedules table already is the source of truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from app.scheduler.service import SchedulerService

log = logging.getLogger("baton.scheduler")

# Kicks that arrive during a pass chain at most this many passes before the timer waits.
MAX_CHAINED_PASSES = 20
# A wake-up is never armed closer than this: a slot reported due "now" but held by another
# process must not spin the loop.
MIN_WAKE_MS = 5
PRUNE_INTERVAL_S = 60.0
STOP_WAIT_S = 10.0


class SchedulerTimer:
    def __init__(self, service: SchedulerService, *, rescan_s: float) -> None:
        self.service = service
        self.rescan_s = rescan_s
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._stopping = False
        self._last_prune = 0.0

    def start(self) -> None:
        """Start the timer (needs the running event loop) and fire what is due now."""
        self._scheduler.start()
        self._scheduler.add_job(
            self._on_timer,
            IntervalTrigger(seconds=self.rescan_s),
            id="rescan",
            max_instances=1,
            coalesce=True,
        )
        self.service.on_change = self.kick
        self.kick()

    async def stop(self) -> None:
        self._stopping = True
        self.service.on_change = lambda: None
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        task = self._task
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), STOP_WAIT_S)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def kick(self) -> None:
        """Run a pass now, or right after the one in progress."""
        if self._stopping:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._passes(), name="baton-scheduler"
            )
        else:
            self._again = True

    async def _on_timer(self) -> None:
        self.kick()

    async def _passes(self) -> None:
        for _ in range(MAX_CHAINED_PASSES):
            self._again = False
            await self._pass()
            if not self._again or self._stopping:
                return

    async def _pass(self) -> None:
        wake: int | None = None
        try:
            handled = await self.service.fire_due()
            if time.monotonic() - self._last_prune >= PRUNE_INTERVAL_S:
                self._last_prune = time.monotonic()
                await self.service.prune()
            wake = await self.service.next_wake_ms()
            if wake is not None and wake <= self.service.clock.now_ms() and not handled:
                # Due but nothing moved (another process holds it, this instance is paused,
                # or it keeps failing): the rescan looks again instead of a busy loop.
                wake = None
        except Exception:  # a database blip must not end scheduling; the rescan retries
            log.exception("scheduler pass failed")
        if wake is not None and not self._stopping:
            self._arm(wake)

    def _arm(self, wake_ms: int) -> None:
        # The service's clock says when a slot is due; APScheduler counts in wall time.
        delay_ms = max(wake_ms - self.service.clock.now_ms(), MIN_WAKE_MS)
        run_date = datetime.now(UTC) + timedelta(milliseconds=delay_ms)
        self._scheduler.add_job(
            self._on_timer,
            DateTrigger(run_date=run_date),
            id="wake",
            replace_existing=True,
            misfire_grace_time=None,
            max_instances=3,
        )
