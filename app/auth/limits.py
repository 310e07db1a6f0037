"""Brute-force protection for POST /api/token: per key id, in this process's memory.

After MAX_FAILURES wrong secrets for one key id within WINDOW_MS, every attempt for that key
id (right or wrong) is refused with 429 for BLOCK_MS. Counted per process: with N processes
behind a load balancer an attacker gets at most N times the budget, still a handful of
guesses a minute against a 256-bit secret.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.clock import Clock
from app.errors import TooManyRequests

MAX_FAILURES = 5
WINDOW_MS = 60_000
BLOCK_MS = 60_000
# Bounds memory when someone sprays random key ids.
MAX_TRACKED = 10_000


@dataclass
class _Failures:
    window_start: int
    count: int = 0
    blocked_until: int = 0


class FailureLimiter:
    def __init__(
        self,
        clock: Clock,
        max_failures: int = MAX_FAILURES,
        window_ms: int = WINDOW_MS,
        block_ms: int = BLOCK_MS,
    ) -> None:
        self._clock = clock
        self.max_failures = max_failures
        self.window_ms = window_ms
        self.block_ms = block_ms
        self._by_key: dict[str, _Failures] = {}

    def check(self, key_id: str) -> None:
        """Raise TooManyRequests while `key_id` is blocked."""
        entry = self._by_key.get(key_id)
        now = self._clock.now_ms()
        if entry is not None and entry.blocked_until > now:
            wait_s = -(-(entry.blocked_until - now) // 1000)
            raise TooManyRequests(
                f"Too many failed attempts for this access key; try again in {wait_s} seconds"
            )

    def record_failure(self, key_id: str) -> None:
        now = self._clock.now_ms()
        entry = self._by_key.get(key_id)
        if entry is None or now - entry.window_start >= self.window_ms:
            if entry is None and len(self._by_key) >= MAX_TRACKED:
                self._prune(now)
            entry = _Failures(window_start=now)
            self._by_key[key_id] = entry
        entry.count += 1
        if entry.count >= self.max_failures:
            entry.blocked_until = now + self.block_ms
            entry.window_start = entry.blocked_until
            entry.count = 0

    def reset(self, key_id: str) -> None:
        self._by_key.pop(key_id, None)

    def _prune(self, now: int) -> None:
        stale = [
            k
            for k, e in self._by_key.items()
            if e.blocked_until <= now and now - e.window_start >= self.window_ms
        ]
        for k in stale:
            del self._by_key[k]
        if len(self._by_key) >= MAX_TRACKED:
            # Still full of live entries: forget the oldest half rather than grow without bound.
            for k in list(self._by_key)[: MAX_TRACKED // 2]:
                del self._by_key[k]
