"""W2's raw worker: POLLERS loops batch-polling `bench_step` (count=10, long poll 100 ms) with
httpx and posting each result; exits after `target` tasks or 300 s.

    python -m bench.w2_raw_worker URL TARGET
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import httpx

from bench.common import headers

TASK = "bench_step"
POLLERS = 4


async def work(url: str, target: int, seconds: float) -> int:
    hdrs = headers(url)
    done = 0
    end = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=POLLERS * 2, keepalive_expiry=2)
    async with httpx.AsyncClient(base_url=url, headers=hdrs, timeout=30, limits=limits) as c:

        async def loop() -> None:
            nonlocal done
            while done < target and time.monotonic() < end:
                r = await c.get(
                    f"/api/tasks/poll/batch/{TASK}",
                    params={"count": 10, "timeout": 100, "workerid": f"raw-{os.getpid()}"},
                )
                for task in r.json() if r.status_code == 200 else []:
                    result = {
                        "workflowInstanceId": task["workflowInstanceId"],
                        "taskId": task["taskId"],
                        "status": "COMPLETED",
                        "outputData": {"ok": 1},
                    }
                    (await c.post("/api/tasks", json=result)).raise_for_status()
                    done += 1

        await asyncio.gather(*(loop() for _ in range(POLLERS)))
    return done


if __name__ == "__main__":
    print(asyncio.run(work(sys.argv[1], int(sys.argv[2]), 300)))
