"""Workers written with the official conductor-python SDK, run as their own process by
tests/e2e/test_sdk_workers.py. Server URL and credentials come from CONDUCTOR_* variables.

No `from __future__ import annotations` here: the SDK reads the workers' parameter types
at run time and needs real classes, not strings."""

import signal
import sys
import time

from conductor.client.automator.task_handler import TaskHandler
from conductor.client.configuration.configuration import Configuration
from conductor.client.worker.worker_task import worker_task


@worker_task(task_definition_name="sdk_add", poll_interval_millis=50, poll_timeout=100)  # type: ignore[untyped-decorator]
def add(a: int, b: int) -> dict[str, int]:
    return {"sum": a + b}


@worker_task(task_definition_name="sdk_double", poll_interval_millis=50, poll_timeout=100)  # type: ignore[untyped-decorator]
def double(value: int) -> dict[str, int]:
    return {"doubled": value * 2}


@worker_task(task_definition_name="sdk_explode", poll_interval_millis=50, poll_timeout=100)  # type: ignore[untyped-decorator]
def explode(value: int) -> dict[str, int]:
    raise RuntimeError(f"cannot handle {value}")


def main() -> int:
    handler = TaskHandler(configuration=Configuration(), scan_for_annotated_workers=True)
    stopping = False

    def on_term(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    handler.start_processes()
    deadline = time.monotonic() + 170  # never outlive the test that started it
    try:
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        handler.stop_processes()
    return 0


if __name__ == "__main__":
    sys.exit(main())
