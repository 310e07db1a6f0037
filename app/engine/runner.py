"""Background loops of one Baton process: the timer sweep (task and workflow timeouts).

Async system tasks (HTTP, ...) get their runner here too when they arrive. Every loop is
bounded by its interval and stops promptly on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from app.engine.executor import Executor

log = logging.getLogger("baton.runner")


class Runner:
    def __init__(self, executor: Executor, *, sweep_interval_s: float) -> None:
        self.executor = executor
        self.sweep_interval_s = sweep_interval_s
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._sweep_loop(), name="baton-sweep"))

    async def stop(self) -> None:
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

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
