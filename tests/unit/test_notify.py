"""Wake-ups are not lost: a notification that lands between looking at a queue and waiting
on it ends the wait at once."""

from __future__ import annotations

import asyncio
import time

from app.engine import notify
from app.engine.notify import Notifier


async def test_a_notification_before_the_wait_ends_it_at_once() -> None:
    n = Notifier()
    seen = n.generation("q")
    n.notify(["q"])  # work landed after we looked, before we waited
    started = time.monotonic()
    assert await n.wait("q", 5.0, since=seen) is True
    assert time.monotonic() - started < 0.5


async def test_without_a_notification_the_wait_runs_out() -> None:
    n = Notifier()
    assert await n.wait("q", 0.05, since=n.generation("q")) is False


async def test_a_notification_during_the_wait_wakes_it() -> None:
    n = Notifier()
    seen = n.generation("q")
    asyncio.get_running_loop().call_later(0.02, n.notify, ["q"])
    assert await asyncio.wait_for(n.wait("q", 5.0, since=seen), 2) is True


async def test_other_names_do_not_wake_a_waiter() -> None:
    n = Notifier()
    seen = n.generation("q")
    n.notify(["other"])
    assert await n.wait("q", 0.05, since=seen) is False


async def test_when_the_counts_start_over_a_waiter_wakes_rather_than_sleeps() -> None:
    n = Notifier()
    seen = n.generation("q")
    for i in range(notify.MAX_TRACKED_NAMES + 1):
        n.notify([f"wf:{i}"])
    assert await n.wait("q", 5.0, since=seen) is True
