"""What a system task implementation returns, and the two shapes implementations take.

A *sync* task runs inside the engine's decide transaction on the already-resolved input
(fast, no I/O: JSON_JQ_TRANSFORM). An *async* task runs outside any transaction, in the
background runner, and may wait on the network (HTTP) or a sandbox (INLINE); its outcome is
then applied to the task in a transaction of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

Json = dict[str, Any]


@dataclass
class TaskOutcome:
    """The result of running a task once: a terminal status, or IN_PROGRESS to be run again
    after `callback_after_seconds` (or, with `wait_for_update`, when someone updates it)."""

    status: str  # COMPLETED | FAILED | FAILED_WITH_TERMINAL_ERROR | IN_PROGRESS
    output: Json = field(default_factory=dict)
    reason: str | None = None
    callback_after_seconds: int = 0
    # IN_PROGRESS until an external update (asyncComplete HTTP, HUMAN, open WAIT).
    wait_for_update: bool = False

    @classmethod
    def completed(cls, output: Json | None = None) -> TaskOutcome:
        return cls("COMPLETED", output or {})

    @classmethod
    def failed(
        cls, reason: str, output: Json | None = None, *, terminal: bool = False
    ) -> TaskOutcome:
        status = "FAILED_WITH_TERMINAL_ERROR" if terminal else "FAILED"
        return cls(status, output or {}, reason)


class SyncTask(Protocol):
    def execute(self, task_input: Json) -> TaskOutcome: ...


class AsyncTask(Protocol):
    async def execute(
        self, task_input: Json, *, timeout_hint_s: float | None = None
    ) -> TaskOutcome: ...

    async def close(self) -> None: ...


@runtime_checkable
class WorkflowAwareTask(Protocol):
    """An async task that acts on behalf of the workflow (UPDATE_SECRET writes a secret as
    the workflow's creator): the engine passes who that is."""

    async def execute_for(
        self, task_input: Json, *, workflow_id: str, run_as: str | None
    ) -> TaskOutcome: ...

    async def close(self) -> None: ...
