"""UPDATE_SECRET: store a value as a secret, on behalf of the workflow's creator.

Input (orkes-features.md 2): `{"_secrets": {"secretKey": NAME, "secretValue": VALUE}}`; both
required. An upsert that creates a new version of the secret; output `{}`. Missing fields, an
invalid name or no permission fail the task with FAILED_WITH_TERMINAL_ERROR (retrying cannot
help) and a reason that names the cause and never the value. Each failure is also written to
the secret's audit trail as a failed rotation, so an operator sees rotation stopped.
"""

from __future__ import annotations

import json
from typing import Protocol

from app.errors import BatonError
from app.secrets import masking
from app.tasks.base import Json, TaskOutcome


class SecretWriter(Protocol):
    async def write_from_workflow(
        self, name: str, value: str, run_as: str | None, workflow_id: str
    ) -> int: ...

    async def record_failed_rotation(
        self, name: str | None, run_as: str | None, workflow_id: str, reason: str
    ) -> None: ...


class UpdateSecretTask:
    def __init__(self, writer: SecretWriter, masker: masking.Masker) -> None:
        self.writer = writer
        self.masker = masker

    async def execute_for(
        self, task_input: Json, *, workflow_id: str, run_as: str | None
    ) -> TaskOutcome:
        block = task_input.get("_secrets")
        if not isinstance(block, dict):
            return await self._fail(
                None,
                run_as,
                workflow_id,
                "UPDATE_SECRET needs input _secrets: {secretKey, secretValue}",
            )
        name = block.get("secretKey")
        value = block.get("secretValue")
        if not isinstance(name, str) or not name.strip():
            return await self._fail(
                None, run_as, workflow_id, "UPDATE_SECRET: _secrets.secretKey is missing or empty"
            )
        if value is None or value == "" or value == {} or value == []:
            return await self._fail(
                name, run_as, workflow_id, "UPDATE_SECRET: _secrets.secretValue is missing or empty"
            )
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        # Known before the write, so nothing logged on the way can show it.
        self.masker.learn([text])
        try:
            await self.writer.write_from_workflow(name, text, run_as, workflow_id)
        except BatonError as exc:
            reason = masking.Redactor([text]).text(exc.message)
            return await self._fail(name, run_as, workflow_id, f"UPDATE_SECRET: {reason}")
        return TaskOutcome.completed({})

    async def execute(
        self, task_input: Json, *, timeout_hint_s: float | None = None
    ) -> TaskOutcome:
        # The engine calls execute_for; without a workflow there is nobody to write as.
        return TaskOutcome.failed("UPDATE_SECRET runs only as part of a workflow", terminal=True)

    async def _fail(
        self, name: str | None, run_as: str | None, workflow_id: str, reason: str
    ) -> TaskOutcome:
        await self.writer.record_failed_rotation(name, run_as, workflow_id, reason)
        return TaskOutcome.failed(reason, terminal=True)

    async def close(self) -> None:
        return None
