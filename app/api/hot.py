"""The busiest endpoints on a lean path: the worker's batch poll and task update, and starting
a workflow by name.

FastAPI's per-request machinery (the scan of ~140 routes, dependency solving, parameter
models) costs more CPU on the event loop than the work these requests do. They are served by
plain Starlette routes placed ahead of the FastAPI routes, with the same behaviour: the same
permission check (the Requirement objects the FastAPI routes declare), the same parameter
validation (pydantic, with FastAPI's error locations, so errors reach the same handlers and
come out in the same shape) and the same service calls. The FastAPI routes stay: they are
what /api-docs describes. tests/api/test_hot_routes.py checks that both answer alike.
"""

from __future__ import annotations

import email.message
import json
from typing import Annotated, Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import Field, TypeAdapter, ValidationError
from starlette.routing import Route

from app.api.deps import services_of
from app.auth.permissions import Permission, Requirement, require, requirement_of
from app.schemas.execution import TaskResult


def _requirement(permission: Permission) -> Requirement:
    found = requirement_of(require(permission))
    assert found is not None
    return found


TASK_WORK = _requirement(Permission.TASK_WORK)
WORKFLOW_EXECUTE = _requirement(Permission.WORKFLOW_EXECUTE)

# TypeAdapters, as FastAPI validates parameters: the error texts are the same.
_TASK_RESULT = TypeAdapter(TaskResult)
_OBJECT = TypeAdapter(dict[str, Any])
_COUNT = TypeAdapter(Annotated[int, Field(ge=1, le=1000)])
_TIMEOUT = TypeAdapter(Annotated[int, Field(ge=0)])
_PRIORITY = TypeAdapter(Annotated[int, Field(ge=0, le=99)])
_INT = TypeAdapter(int)
_MISSING = object()


def _located(exc: ValidationError, *prefix: str | int) -> RequestValidationError:
    errors = []
    for error in exc.errors(include_url=False):
        error["loc"] = (*prefix, *error["loc"])
        errors.append(error)
    return RequestValidationError(errors)


async def _json_body(request: Request) -> Any:
    """The body as FastAPI reads it for a JSON body parameter: JSON when the content type
    says so, the raw bytes otherwise, `_MISSING` when empty."""
    raw = await request.body()
    if not raw:
        return _MISSING
    content_type = request.headers.get("content-type")
    if content_type:
        message = email.message.Message()
        message["content-type"] = content_type
        subtype = message.get_content_subtype()
        if message.get_content_maintype() == "application" and (
            subtype == "json" or subtype.endswith("+json")
        ):
            try:
                return json.loads(raw)
            except json.JSONDecodeError as exc:
                raise RequestValidationError(
                    [
                        {
                            "type": "json_invalid",
                            "loc": ("body", exc.pos),
                            "msg": "JSON decode error",
                            "input": {},
                            "ctx": {"error": exc.msg},
                        }
                    ]
                ) from None
    return raw


def _body_missing() -> RequestValidationError:
    return RequestValidationError(
        [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
    )


def _body(adapter: TypeAdapter[Any], body: Any) -> Any:
    if body is _MISSING:
        raise _body_missing()
    try:
        return adapter.validate_python(body, from_attributes=True)
    except ValidationError as exc:
        raise _located(exc, "body") from None


def _query(request: Request, name: str, adapter: TypeAdapter[Any], default: Any) -> Any:
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        return adapter.validate_python(value, from_attributes=True)
    except ValidationError as exc:
        raise _located(exc, "query", name) from None


async def batch_poll(request: Request) -> Response:
    await TASK_WORK(request, None)
    task_type: str = request.path_params["tasktype"]
    worker_id = request.query_params.get("workerid")
    domain = request.query_params.get("domain")
    count = _query(request, "count", _COUNT, 1)
    timeout = _query(request, "timeout", _TIMEOUT, 100)
    svc = services_of(request).executions
    return JSONResponse(await svc.poll(task_type, worker_id, domain or None, count, timeout))


async def update_task(request: Request) -> Response:
    await TASK_WORK(request, None)
    result: TaskResult = _body(_TASK_RESULT, await _json_body(request))
    return PlainTextResponse(await services_of(request).executions.update(result))


async def start_workflow_by_name(request: Request) -> Response:
    caller = await WORKFLOW_EXECUTE(request, None)
    name: str = request.path_params["name"]
    version = _query(request, "version", _INT, None)
    correlation_id = request.query_params.get("correlationId")
    priority = _query(request, "priority", _PRIORITY, 0)
    body = _body(_OBJECT, await _json_body(request))
    svc = services_of(request).executions
    return PlainTextResponse(
        await svc.start_by_name(name, version, correlation_id, priority, body, caller.id)
    )


def _route(path: str, endpoint: Any, method: str) -> Route:
    route = Route(path, endpoint, methods=[method])
    route.methods = {method}  # Starlette adds HEAD to GET; the FastAPI routes have none
    return route


HOT_ROUTES = [
    _route("/api/tasks/poll/batch/{tasktype}", batch_poll, "GET"),
    _route("/api/tasks", update_task, "POST"),
    _route("/api/workflow/{name}", start_workflow_by_name, "POST"),
]


def install(app: FastAPI) -> None:
    """Put the lean routes ahead of every other route (they shadow the FastAPI ones)."""
    app.router.routes[0:0] = HOT_ROUTES
