"""W2's SDK worker: the official conductor-python TaskHandler with one worker for
`bench_step` (thread_count 10, so polls ask for up to 10 tasks; long poll 100 ms). Server and
credentials come from CONDUCTOR_* variables. Stops when the server counts `target` completed
workflows, or after 300 s.

    python -m bench.w2_sdk_worker URL TARGET

No `from __future__ import annotations`: the SDK reads the worker's parameter types at run
time and needs real classes, not strings.
"""

import sys
import time

import httpx
from conductor.client.automator.task_handler import TaskHandler
from conductor.client.configuration.configuration import Configuration
from conductor.client.worker.worker_task import worker_task

from bench.common import headers


@worker_task(  # type: ignore[untyped-decorator]
    task_definition_name="bench_step", thread_count=10, poll_timeout=100, poll_interval_millis=1
)
def bench_step() -> dict[str, int]:
    return {"ok": 1}


def completed(url: str, hdrs: dict[str, str]) -> int:
    r = httpx.get(
        f"{url}/api/workflow/search",
        params={"query": "workflowType='bench_w2' AND status='COMPLETED'", "size": 1},
        headers=hdrs,
        timeout=30,
    )
    return int(r.json()["totalHits"]) if r.status_code == 200 else 0


def main() -> int:
    url, target = sys.argv[1], int(sys.argv[2])
    hdrs = headers(url)
    handler = TaskHandler(configuration=Configuration(), scan_for_annotated_workers=True)
    handler.start_processes()
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and completed(url, hdrs) < target:
            time.sleep(0.25)
    finally:
        handler.stop_processes()
    return 0


if __name__ == "__main__":
    sys.exit(main())
