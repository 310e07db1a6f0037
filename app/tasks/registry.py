"""Which implementation runs each system task type, installed into the engine at start-up.

Types the engine handles itself (SWITCH, FORK/JOIN, DO_WHILE, SET_VARIABLE, TERMINATE,
WAIT, HUMAN, SUB_WORKFLOW, START_WORKFLOW, ...) live in app/engine; this module adds the
ones backed by a library or a service: HTTP (httpx), INLINE (V8 via mini-racer),
JSON_JQ_TRANSFORM (jq), UPDATE_SECRET (the secret service).
"""

from __future__ import annotations

from typing import Any

from app.config import Settings
from app.engine.executor import Executor
from app.tasks.http import HttpTask
from app.tasks.inline import InlineTask
from app.tasks.jq_transform import JqTransformTask
from app.tasks.js import JsEvaluator
from app.tasks.update_secret import SecretWriter, UpdateSecretTask

# SWITCH and DO_WHILE conditions run inside the decide step: they must be quick.
CONDITION_TIMEOUT_MS = 1000


class Installed:
    def __init__(self, http: HttpTask, js: JsEvaluator) -> None:
        self.http = http
        self.js = js

    async def close(self) -> None:
        await self.http.close()
        self.js.close()


def install(
    executor: Executor, settings: Settings, secrets: SecretWriter | None = None
) -> Installed:
    js = JsEvaluator(timeout_ms=settings.script_timeout_ms)
    http = HttpTask(max_response_bytes=settings.http_max_response_bytes)
    executor.system.asynchronous["HTTP"] = http
    executor.system.asynchronous["INLINE"] = InlineTask(js)
    executor.system.sync["JSON_JQ_TRANSFORM"] = JqTransformTask()
    if secrets is not None:
        executor.system.asynchronous["UPDATE_SECRET"] = UpdateSecretTask(secrets, executor.masker)

    def evaluate(expression: str, bindings: dict[str, Any]) -> Any:
        return js.evaluate_sync(expression, bindings, CONDITION_TIMEOUT_MS)

    executor.evaluate_js = evaluate
    return Installed(http, js)
