"""Event handlers, the EVENT task on Baton's internal `conductor` queue, and signals.

An EVENT task with sink `conductor` (or `conductor:<queue>`) produces the event
`conductor:<workflowName>:<taskRef>` (or `conductor:<workflowName>:<queue>`); any other sink
(sqs, kafka, amqp, nats, ...) fails the task: Baton has no brokers. The produced message (the
task's output) goes to every active handler registered on exactly that event, inside the
transaction that runs the EVENT task, so no message is lost between "published" and "handled":

- `start_workflow` starts the workflow in that same transaction (a chain of event-started
  workflows deeper than MAX_INLINE_STARTS is deferred like the task actions below, so a
  handler cycle cannot recurse without bound).
- `complete_task` / `fail_task` touch another workflow, which must not be locked from inside
  this one's transaction (two processes doing so crosswise would deadlock). The resolved
  action is written to `event_actions` with a `_sys:EVENT_ACTION` queue item, both in the
  EVENT task's transaction; the background runner applies it afterwards in the target
  workflow's own transaction, which also deletes the row. Delivery is therefore at least once
  (a crash before that commit leaves the row and its leased item to be run again) and the
  effect exactly once (the row is the token: a second run finds it gone and does nothing).

Handler conditions are JavaScript over the payload (`$`), as Conductor's ScriptEvaluator:
true or a positive number runs the actions. A condition that cannot be evaluated skips the
handler (logged); the EVENT task itself is not affected, as in Conductor where handlers run
asynchronously.
"""

from __future__ import annotations

import json
import logging
import time
from contextvars import ContextVar
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from app.engine import decider, expressions
from app.engine.executor import Executor, StartRequest, Unit
from app.engine.model import (
    T_COMPLETED,
    T_FAILED,
    T_FAILED_WITH_TERMINAL_ERROR,
    T_IN_PROGRESS,
    T_TERMINAL,
    WF_TERMINAL,
    TaskRecord,
    new_id,
)
from app.engine.system import apply_outcome, system_queue
from app.errors import BadRequest, BatonError, Conflict, FieldError, NotFound, ValidationFailed
from app.schemas.events import EventAction, EventHandler, StartWorkflowAction
from app.store import events as repo
from app.store import executions as store
from app.tasks.base import TaskOutcome

log = logging.getLogger("baton.events")

Json = dict[str, Any]

ACTION_KIND = "EVENT_ACTION"
ACTION_QUEUE = system_queue(ACTION_KIND)
ACTIONS = ("start_workflow", "complete_task", "fail_task")
EVALUATORS = ("javascript", "graaljs", "value-param")
# Workflows started by handlers of events produced by workflows started by handlers ...:
# this many levels run inline, deeper ones go through the action queue.
MAX_INLINE_STARTS = 3
_inline_starts: ContextVar[int] = ContextVar("baton_event_inline_starts", default=0)

# Task statuses a signal or a queue update may set.
SIGNAL_STATUSES = (T_COMPLETED, T_FAILED, T_FAILED_WITH_TERMINAL_ERROR, T_IN_PROGRESS)
# Conductor's default event queue processor has a queue for these two only.
QUEUE_STATUSES = (T_COMPLETED, T_FAILED)
RETURN_STRATEGIES = ("TARGET_WORKFLOW", "BLOCKING_WORKFLOW", "BLOCKING_TASK", "BLOCKING_TASK_INPUT")
# Tasks that wait for the outside world: signal/sync returns once the workflow reaches one.
WAITING_TYPES = frozenset({"WAIT", "HUMAN", *decider.WORKER_TYPES})
SIGNAL_RECHECK_S = 1.0
MAX_SUB_WORKFLOW_DEPTH = 32


# -- pure helpers -------------------------------------------------------------------------


def produced_event(sink: str, workflow_name: str, task_ref: str) -> str | None:
    """The event an EVENT task publishes to, or None when the sink is not Baton's own queue."""
    if sink == "conductor":
        return f"conductor:{workflow_name}:{task_ref}"
    if sink.startswith("conductor:"):
        return f"conductor:{workflow_name}:{sink.removeprefix('conductor:')}"
    return None


def expand_inline_json(value: Any) -> Any:
    """Conductor's JsonUtils.expand: strings holding a JSON object or array become that value."""
    if isinstance(value, dict):
        return {k: expand_inline_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_inline_json(v) for v in value]
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            return expand_inline_json(json.loads(value))
        except ValueError:
            return value
    return value


def _truthy(value: Any) -> bool:
    # Conductor's ScriptEvaluator.toBoolean.
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value > 0
    return False


def handler_errors(handler: EventHandler) -> list[FieldError]:
    errors: list[FieldError] = []
    if not (handler.name or "").strip():
        errors.append(FieldError("name", "Missing event handler name", handler.name))
    event = (handler.event or "").strip()
    kind = event.split(":", 1)[0]
    if not event:
        errors.append(FieldError("event", "Missing event location", handler.event))
    elif kind != "conductor":
        # Baton has no brokers: a handler on sqs:/kafka:/... events would never run.
        message = f"Event type {kind} is not supported by Baton (only conductor)"
        errors.append(FieldError("event", message, handler.event))
    if handler.evaluatorType and handler.evaluatorType not in EVALUATORS:
        message = f"evaluatorType must be one of {', '.join(EVALUATORS)}"
        errors.append(FieldError("evaluatorType", message, handler.evaluatorType))
    if not handler.actions:
        errors.append(
            FieldError("actions", "No actions specified. Please specify at-least one action")
        )
    for i, action in enumerate(handler.actions):
        errors.extend(_action_errors(action, f"actions[{i}]"))
    return errors


def _action_errors(action: EventAction, path: str) -> list[FieldError]:
    kind = action.action
    if kind not in ACTIONS:
        message = f"Action {kind} is not supported; use one of {', '.join(ACTIONS)}"
        return [FieldError(f"{path}.action", message, kind)]
    if kind == "start_workflow":
        if action.start_workflow is None or not (action.start_workflow.name or "").strip():
            message = "start_workflow action needs the name of the workflow to start"
            return [FieldError(f"{path}.start_workflow.name", message)]
        return []
    details = action.complete_task if kind == "complete_task" else action.fail_task
    if details is None or not (details.taskId or (details.workflowId and details.taskRefName)):
        message = f"{kind} action needs taskId, or workflowId and taskRefName"
        return [FieldError(f"{path}.{kind}", message)]
    return []


def _task_status(status: str, allowed: tuple[str, ...]) -> str:
    if status not in allowed:
        raise BadRequest(f"Invalid task status: {status}")
    return status


def check_queue_status(status: str) -> str:
    """The status of a /api/queue/update call (Conductor's queues: COMPLETED and FAILED)."""
    if status not in QUEUE_STATUSES:
        raise BadRequest(f"There is no queue for handling {status} status")
    return status


# -- the EVENT task and handler actions ----------------------------------------------------


class EventBus:
    """Runs EVENT tasks (inline, in the decide transaction) and the actions they defer."""

    def __init__(self, executor: Executor) -> None:
        self.ex = executor

    async def run_event_task(
        self, conn: AsyncConnection, unit: Unit, task: TaskRecord, now: int
    ) -> None:
        wf = unit.wf
        wt = task.workflowTask
        sink = self._sink(unit, task, now)
        async_complete = bool(wt.get("asyncComplete"))
        # Conductor's EventTaskMapper puts both into the task's input.
        task.inputData["sink"] = sink
        task.inputData["asyncComplete"] = async_complete
        # The base reference: inside a DO_WHILE the event is the same on every iteration.
        event = produced_event(sink, wf.workflowName, task.base_ref) if sink else None
        if event is None:
            kind = sink.split(":", 1)[0] if sink else sink
            reason = f"Event sink type {kind} is not supported by Baton (only conductor)"
            if not sink:
                reason = "The EVENT task has no sink"
            apply_outcome(task, TaskOutcome.failed(reason, terminal=True), now)
            return
        payload: Json = {
            **task.inputData,
            "workflowInstanceId": wf.workflowId,
            "workflowType": wf.workflowName,
            "workflowVersion": wf.workflowVersion,
            "correlationId": wf.correlationId,
            "taskToDomain": wf.taskToDomain,
            "event_produced": event,
        }
        if async_complete:
            task.outputData = dict(payload)  # stays IN_PROGRESS until someone updates it
            task.updateTime = now
        else:
            apply_outcome(task, TaskOutcome.completed(dict(payload)), now)
        # Conductor's message id for its own queue is the task id.
        await self._publish(conn, unit, event, task.taskId, payload, now)

    def _sink(self, unit: Unit, task: TaskRecord, now: int) -> str:
        raw = task.workflowTask.get("sink")
        if isinstance(raw, str) and expressions.has_expressions(raw):
            # Conductor resolves the sink like an input parameter.
            state = decider.State(unit.definition, unit.index, unit.wf, unit.tasks, now, _none)
            raw = expressions.resolve(raw, decider.evaluation_context(state), task_id=task.taskId)
        return raw.strip() if isinstance(raw, str) else ""

    async def _publish(
        self,
        conn: AsyncConnection,
        unit: Unit,
        event: str,
        message_id: str,
        payload: Json,
        now: int,
    ) -> None:
        for body in await repo.handlers_for_event(conn, event, active_only=True):
            try:
                handler = EventHandler.model_validate(body)
            except ValueError:
                log.error("event handler %r is stored malformed; skipped", body.get("name"))
                continue
            if not self._condition_holds(handler, payload):
                continue
            for action in handler.actions:
                try:
                    await self._act(conn, unit, action, event, message_id, payload, now)
                except (BatonError, ValueError, TypeError) as exc:
                    # As in Conductor, a failing action does not fail the EVENT task.
                    log.warning(
                        "event %s: action %s of handler %s failed: %s",
                        event,
                        action.action,
                        handler.name,
                        getattr(exc, "message", exc),
                    )

    def _condition_holds(self, handler: EventHandler, payload: Json) -> bool:
        condition = (handler.condition or "").strip()
        if not condition:
            return True
        if handler.evaluatorType == "value-param":
            return _truthy(payload.get(condition))
        evaluate = self.ex.evaluate_js
        if evaluate is None:
            log.error("handler %s: JavaScript is not available; condition not met", handler.name)
            return False
        try:
            return _truthy(evaluate(condition, payload))
        except Exception as exc:  # the evaluator's errors carry the script's message
            log.warning("handler %s: condition %r failed: %s", handler.name, condition, exc)
            return False

    async def _act(
        self,
        conn: AsyncConnection,
        unit: Unit,
        action: EventAction,
        event: str,
        message_id: str,
        payload: Json,
        now: int,
    ) -> None:
        doc = expand_inline_json(payload) if action.expandInlineJSON else payload
        if action.action == "start_workflow":
            if action.start_workflow is None:
                raise BadRequest("start_workflow action without start_workflow parameters")
            request = _start_request(action.start_workflow, doc, event, message_id)
            depth = _inline_starts.get()
            if depth >= MAX_INLINE_STARTS:
                await self._defer(conn, unit, {"action": "start_workflow", "request": request}, now)
                return
            token = _inline_starts.set(depth + 1)
            try:
                _, notify = await self.ex._start_in(conn, StartRequest(**request), now)
            finally:
                _inline_starts.reset(token)
            unit.notify |= notify
            return
        kind = action.action or ""
        details = action.complete_task if kind == "complete_task" else action.fail_task
        if kind not in ("complete_task", "fail_task") or details is None:
            raise BadRequest(f"Action {kind} is not supported")
        # Conductor's SimpleActionProcessor: these keys and the output, resolved together;
        # the whole map becomes the task's output.
        template: Json = {
            "workflowId": details.workflowId,
            "taskId": details.taskId,
            "taskRefName": details.taskRefName,
            "reasonForIncompletion": details.reasonForIncompletion,
            **details.output,
        }
        resolved = expressions.resolve(template, doc)
        output = {
            **resolved,
            "conductor.event.messageId": message_id,
            "conductor.event.name": event,
        }
        status = T_COMPLETED if kind == "complete_task" else T_FAILED
        reason = resolved.get("reasonForIncompletion")
        deferred: Json = {
            "action": kind,
            "status": status,
            "workflowId": _text(resolved.get("workflowId")),
            "taskId": _text(resolved.get("taskId")),
            "taskRefName": _text(resolved.get("taskRefName")),
            "reasonForIncompletion": None if reason is None else str(reason),
            "output": output,
        }
        await self._defer(conn, unit, deferred, now)

    async def _defer(self, conn: AsyncConnection, unit: Unit, action: Json, now: int) -> None:
        action_id = new_id()
        await repo.insert_action(conn, action_id, action, now)
        unit.queue_push.append((ACTION_QUEUE, action_id, now, unit.wf.priority))
        unit.notify.add(ACTION_QUEUE)

    # -- deferred actions, run by the background runner -------------------------------------

    async def run_action(self, action_id: str) -> None:
        async with self.ex.db.read() as conn:
            action = await repo.get_action(conn, action_id)
        if action is None:  # applied already; only its queue item was left
            await self._drop(action_id)
            return
        try:
            if action.get("action") == "start_workflow":
                await self._start_deferred(action_id, action)
            else:
                await self._update_task(action_id, action)
        except BatonError as exc:
            log.warning(
                "event action %s (%s) dropped: %s", action_id, action.get("action"), exc.message
            )
            await self._drop(action_id)

    async def _drop(self, action_id: str) -> None:
        async def unit_of_work(conn: AsyncConnection) -> None:
            await repo.delete_action(conn, action_id)
            await store.remove_items(conn, [action_id])

        await self.ex.db.run_write(unit_of_work)

    async def _start_deferred(self, action_id: str, action: Json) -> None:
        async def unit_of_work(conn: AsyncConnection) -> set[str]:
            if not await repo.delete_action(conn, action_id):
                return set()
            await store.remove_items(conn, [action_id])
            request = StartRequest(**action["request"])
            _, notify = await self.ex._start_in(conn, request, self.ex.clock.now_ms())
            return notify

        self.ex.notifier.notify(await self.ex.db.run_write(unit_of_work))

    async def _update_task(self, action_id: str, action: Json) -> None:
        task_id: str | None = action.get("taskId")
        workflow_id: str | None = action.get("workflowId")
        ref: str | None = action.get("taskRefName")

        async def target(conn: AsyncConnection) -> str | None:
            if task_id:
                return await store.task_workflow_id(conn, task_id)
            return workflow_id

        async def apply(conn: AsyncConnection, unit: Unit, now: int) -> None:
            # The row is the token: the transaction that deletes it applies the action.
            if not await repo.delete_action(conn, action_id):
                return
            unit.queue_remove.append(action_id)
            task = unit.task(task_id) if task_id else _pending_by_ref(unit.tasks, ref or "")
            if task is None or task.terminal or unit.wf.terminal:
                log.warning(
                    "event action %s: no pending task with taskId: %s, reference name: %s, "
                    "workflowId: %s",
                    action_id,
                    task_id,
                    ref,
                    unit.wf.workflowId,
                )
                return
            result: Json = {"status": action["status"], "outputData": action["output"]}
            if action["status"] != T_COMPLETED:
                result["reasonForIncompletion"] = action.get("reasonForIncompletion")
            decider.apply_task_result(task, result, now)
            self.ex.filter_output(unit, task, now)
            unit.queue_remove.append(task.taskId)
            unit.touch(task)

        await self.ex.change(target, apply)


def _none(_name: str) -> None:
    return None


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _pending_by_ref(tasks: list[TaskRecord], ref: str) -> TaskRecord | None:
    """The first non-terminal task with this reference (a DO_WHILE iteration of it too)."""
    return next(
        (t for t in tasks if not t.terminal and ref in (t.referenceTaskName, t.base_ref)), None
    )


def _start_request(params: StartWorkflowAction, doc: Any, event: str, message_id: str) -> Json:
    """Conductor's SimpleActionProcessor.startWorkflow, as StartRequest keyword arguments."""
    workflow_input = expressions.resolve(params.input, doc)
    workflow_input["conductor.event.messageId"] = message_id
    workflow_input["conductor.event.name"] = event
    correlation_id = params.correlationId
    if correlation_id is not None:
        resolved = expressions.resolve(correlation_id, doc)
        correlation_id = str(resolved) if resolved is not None else correlation_id
    task_to_domain = params.taskToDomain
    if task_to_domain is None:
        # Without its own mapping the new workflow takes the one the payload carries.
        from_payload = expressions.resolve("${taskToDomain}", doc)
        task_to_domain = from_payload if isinstance(from_payload, dict) else {}
    return {
        "name": params.name or "",
        "version": params.version,
        "input": workflow_input,
        "correlationId": correlation_id,
        "taskToDomain": {str(k): str(v) for k, v in task_to_domain.items()},
        "event": event,
    }


def install_events(executor: Executor) -> EventBus:
    """Run EVENT tasks and the actions of event handlers in this executor."""
    bus = EventBus(executor)
    executor.system.register_inline("EVENT", bus.run_event_task)
    executor.system.register_queue(ACTION_KIND, bus.run_action)
    return bus


# -- the API: handlers, signals -----------------------------------------------------------


class EventService:
    def __init__(self, executor: Executor) -> None:
        self.ex = executor
        self.db = executor.db
        self.clock = executor.clock

    # -- handlers ---------------------------------------------------------------------------

    async def add_handler(self, handler: EventHandler) -> None:
        name, event = _checked(handler)
        async with self.db.write() as conn:
            if await repo.handler_exists(conn, name):
                raise Conflict(f"EventHandler with name {name} already exists!")
            now = self.clock.now_ms()
            await repo.insert_handler(conn, name, event, handler.active, handler.to_json(), now)

    async def update_handler(self, handler: EventHandler) -> None:
        name, event = _checked(handler)
        async with self.db.write() as conn:
            now = self.clock.now_ms()
            body = handler.to_json()
            if not await repo.update_handler(conn, name, event, handler.active, body, now):
                raise NotFound(f"EventHandler with name {name} not found!")

    async def delete_handler(self, name: str) -> None:
        async with self.db.write() as conn:
            if not await repo.delete_handler(conn, name):
                raise NotFound(f"EventHandler with name {name} not found!")

    async def list_handlers(self) -> list[Json]:
        async with self.db.read() as conn:
            return await repo.list_handlers(conn)

    async def handlers_for_event(self, event: str, active_only: bool) -> list[Json]:
        async with self.db.read() as conn:
            return await repo.handlers_for_event(conn, event, active_only)

    # -- signals ----------------------------------------------------------------------------

    async def signal(self, workflow_id: str, status: str, output: Json) -> Json:
        """Update the first non-terminal WAIT task of the workflow (or of a running
        sub-workflow it waits on) with `status` and `output`. Returns the task as it was."""
        _task_status(status, SIGNAL_STATUSES)
        found = await self._first(workflow_id, frozenset({"WAIT"}))
        if found is None:
            raise NotFound(f"No WAIT task is waiting for a signal in workflow {workflow_id}")
        _, task = found
        result: Json = {"taskId": task["taskId"], "status": status, "outputData": output}
        await self.ex.update_task(result)
        return task

    async def signal_sync(
        self, workflow_id: str, status: str, output: Json, strategy: str, timeout_ms: int
    ) -> Json:
        """Signal, then wait (bounded) until the workflow ends or waits on the outside world
        again (a WAIT, HUMAN or worker task, in it or a running sub-workflow), and answer in
        the shape `strategy` asks for."""
        if strategy not in RETURN_STRATEGIES:
            raise BadRequest(
                f"returnStrategy must be one of {', '.join(RETURN_STRATEGIES)}, not {strategy}"
            )
        seconds = max(timeout_ms, 0) / 1000
        # Registered before the signal: what it sets off in other processes wakes us too.
        async with self.ex.watching(workflow_id, seconds) as key:
            await self.signal(workflow_id, status, output)
            deadline = time.monotonic() + seconds
            while True:
                seen = self.ex.notifier.generation(key)
                target = await self.ex.get_workflow(workflow_id, include_tasks=True)
                blocking = await self._first_in(target, WAITING_TYPES, 0)
                remaining = deadline - time.monotonic()
                if target["status"] in WF_TERMINAL or blocking is not None or remaining <= 0:
                    break
                await self.ex.notifier.wait(key, min(remaining, SIGNAL_RECHECK_S), since=seen)
        masker = self.ex.masker
        if blocking is not None:
            blocking = (masker.workflow_view(blocking[0]), masker.view(blocking[1]))
        return _signal_response(strategy, masker.workflow_view(target), blocking)

    async def _first(self, workflow_id: str, types: frozenset[str]) -> tuple[Json, Json] | None:
        wf = await self.ex.get_workflow(workflow_id, include_tasks=True)
        return await self._first_in(wf, types, 0)

    async def _first_in(
        self, wf: Json, types: frozenset[str], depth: int
    ) -> tuple[Json, Json] | None:
        """The first non-terminal task of one of `types` in `wf`, descending into running
        sub-workflows, with the workflow that holds it."""
        if wf["status"] in WF_TERMINAL or depth > MAX_SUB_WORKFLOW_DEPTH:
            return None
        for task in wf.get("tasks", []):
            if task["status"] in T_TERMINAL:
                continue
            kind = task.get("workflowTask", {}).get("type", "SIMPLE")
            if kind in types:
                return wf, task
            child_id = task.get("subWorkflowId")
            if kind == "SUB_WORKFLOW" and child_id:
                try:
                    child = await self.ex.get_workflow(child_id, include_tasks=True)
                except NotFound:
                    continue
                found = await self._first_in(child, types, depth + 1)
                if found is not None:
                    return found
        return None


def _signal_response(strategy: str, target: Json, blocking: tuple[Json, Json] | None) -> Json:
    """Orkes' SignalResponse, flattened: the requested shape plus who was targeted. Without a
    blocking task (the workflow ended) every strategy answers with the target workflow."""
    head: Json = {
        "targetWorkflowId": target["workflowId"],
        "targetWorkflowStatus": target["status"],
    }
    if blocking is not None and strategy in ("BLOCKING_TASK", "BLOCKING_TASK_INPUT"):
        _, task = blocking
        return {
            **task,
            **head,
            "responseType": strategy,
            "workflowId": task["workflowInstanceId"],
            "input": task.get("inputData", {}),
            "output": task.get("outputData", {}),
        }
    if blocking is not None and strategy == "BLOCKING_WORKFLOW":
        holder, _ = blocking
        return {**holder, **head, "responseType": strategy}
    return {**target, **head, "responseType": "TARGET_WORKFLOW"}


def _checked(handler: EventHandler) -> tuple[str, str]:
    errors = handler_errors(handler)
    if errors:
        raise ValidationFailed(errors)
    assert handler.name is not None and handler.event is not None
    return handler.name, handler.event
