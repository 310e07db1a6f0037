"""Brute-force protection for /api/token, on the injectable clock."""

from __future__ import annotations

import pytest

from app.auth.limits import FailureLimiter
from app.clock import ManualClock
from app.errors import TooManyRequests


def _fail(limiter: FailureLimiter, key: str, times: int) -> None:
    for _ in range(times):
        limiter.record_failure(key)


def test_four_failures_do_not_block() -> None:
    limiter = FailureLimiter(ManualClock())
    _fail(limiter, "k", 4)
    limiter.check("k")


def test_five_failures_in_a_minute_block_the_key_id() -> None:
    limiter = FailureLimiter(ManualClock())
    _fail(limiter, "k", 5)
    with pytest.raises(TooManyRequests) as caught:
        limiter.check("k")
    assert "60 seconds" in caught.value.message


def test_block_ends_after_a_minute() -> None:
    clock = ManualClock()
    limiter = FailureLimiter(clock)
    _fail(limiter, "k", 5)
    clock.advance(60_000)
    limiter.check("k")


def test_failures_spread_over_more_than_the_window_do_not_block() -> None:
    clock = ManualClock()
    limiter = FailureLimiter(clock)
    _fail(limiter, "k", 4)
    clock.advance(60_000)
    _fail(limiter, "k", 4)
    limiter.check("k")


def test_other_key_ids_are_not_blocked() -> None:
    limiter = FailureLimiter(ManualClock())
    _fail(limiter, "k", 5)
    limiter.check("other")


def test_reset_forgets_failures() -> None:
    limiter = FailureLimiter(ManualClock())
    _fail(limiter, "k", 4)
    limiter.reset("k")
    _fail(limiter, "k", 4)
    limiter.check("k")


def test_memory_stays_bounded_when_key_ids_are_sprayed(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.auth import limits

    monkeypatch.setattr(limits, "MAX_TRACKED", 100)
    limiter = FailureLimiter(ManualClock())
    for i in range(1000):
        limiter.record_failure(f"k{i}")
    assert len(limiter._by_key) <= 100
