"""Wake-ups: a waiter on a queue name is woken the moment work lands on that queue.

In-process waiters are futures keyed by queue name. On Postgres, every process LISTENs on one
channel and every commit that queues work NOTIFYs it, so a worker long-polling one Baton
process is woken by work scheduled in another. Lost wake-ups cost latency, never work: every
wait is bounded and the caller looks at the queue again afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("baton.notify")

CHANNEL = "baton_queue"


def workflow_key(workflow_id: str) -> str:
    """A workflow's own name: woken by every change to it (synchronous execute and
    signal/sync waits)."""
    return f"wf:{workflow_id}"


# Notification counts kept per name; past this many names the map starts over (a waiter then
# wakes once for nothing, which is harmless: every caller looks at its queue again).
MAX_TRACKED_NAMES = 10_000

Generation = tuple[int, int]


class Notifier:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Future[None]]] = defaultdict(set)
        self._counts: dict[str, int] = {}
        self._epoch = 0

    def generation(self, name: str) -> Generation:
        """Take this before looking at a queue and pass it to wait(): a notification that
        lands between the look and the wait is not lost."""
        return self._epoch, self._counts.get(name, 0)

    def notify(self, names: Iterable[str]) -> None:
        for name in names:
            if len(self._counts) >= MAX_TRACKED_NAMES and name not in self._counts:
                self._counts.clear()
                self._epoch += 1
            self._counts[name] = self._counts.get(name, 0) + 1
            waiters = self._waiters.pop(name, None)
            for fut in waiters or ():
                if not fut.done():
                    fut.set_result(None)

    async def wait(self, name: str, timeout_s: float, since: Generation | None = None) -> bool:
        """Wait until `name` is notified or the timeout passes; True if notified (at once
        if it was notified after `since` was taken)."""
        if since is not None and self.generation(name) != since:
            return True
        if timeout_s <= 0:
            return False
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[name].add(fut)
        try:
            await asyncio.wait_for(fut, timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            waiters = self._waiters.get(name)
            if waiters is not None:
                waiters.discard(fut)
                if not waiters:
                    self._waiters.pop(name, None)


class PostgresListener:
    """Forwards NOTIFYs from other processes on one dedicated asyncpg connection."""

    def __init__(self, dsn: str, notifier: Notifier) -> None:
        self._dsn = dsn
        self._notifier = notifier
        self._conn: Any = None

    async def start(self) -> None:
        import asyncpg

        try:
            self._conn = await asyncpg.connect(self._dsn)
            await self._conn.add_listener(CHANNEL, self._on_notify)
        except Exception as exc:  # polling still guarantees progress
            log.warning("LISTEN %s unavailable (%s); relying on polling", CHANNEL, exc)
            self._conn = None

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._notifier.notify(payload.split(","))

    async def stop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None
