"""The HTTP endpoint every workload's steps call: answers `{"ok": true}` at once and records
`(workflow key, step, monotonic time)` for every hit.

A workflow's HTTP steps call `/s1?k=KEY` and `/s2?k=KEY`; the time of its `/s2` hit is its
completion time. That times every system the same way, without status polling, and the hit
log shows duplicate step executions (after a crash) per workflow and step.

The drivers run the stub inside their own event loop (`Stub`). As its own process, for manual
runs, `python -m bench.stub_server PORT`; `GET /__hits` returns the hit counts.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import defaultdict
from typing import Any

from bench.minihttp import bound_port, serve

FINAL_STEP = "s2"


class Stub:
    def __init__(self) -> None:
        self.hits: dict[tuple[str, str], list[float]] = defaultdict(list)
        self._done: dict[str, asyncio.Event] = {}
        self._server: asyncio.Server | None = None
        self.url = ""

    async def start(self, port: int = 0) -> str:
        self._server = await serve(self._handle, port)
        self.url = f"http://127.0.0.1:{bound_port(self._server)}"
        return self.url

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            # Peers may hold keep-alive connections open; do not wait for them to hang up.
            self._server = None

    async def _handle(
        self, method: str, path: str, query: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        if path == "/__hits":
            return 200, self.summary()
        step = path.strip("/")
        key = query.get("k", "")
        self.hits[(key, step)].append(time.monotonic())
        if step == FINAL_STEP:
            self.done_event(key).set()
        return 200, {"ok": True, "token": "t"}

    def done_event(self, key: str) -> asyncio.Event:
        event = self._done.get(key)
        if event is None:
            event = self._done[key] = asyncio.Event()
        return event

    def completed_at(self, key: str) -> float | None:
        """Monotonic time of the first final-step hit of a workflow, if any."""
        times = self.hits.get((key, FINAL_STEP))
        return times[0] if times else None

    def duplicates(self, keys: list[str] | None = None) -> int:
        """Step executions beyond the first, per (workflow, step)."""
        wanted = set(keys) if keys is not None else None
        return sum(
            len(times) - 1
            for (key, _step), times in self.hits.items()
            if len(times) > 1 and (wanted is None or key in wanted)
        )

    def summary(self) -> dict[str, int]:
        return {
            "hits": sum(len(t) for t in self.hits.values()),
            "workflows": len({k for k, _ in self.hits}),
            "duplicates": self.duplicates(),
        }


async def _main(port: int) -> None:
    stub = Stub()
    await stub.start(port)
    print(stub.url, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1])))
