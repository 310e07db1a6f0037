"""Domain exceptions and their one mapping to Conductor's error JSON.

Every error body has `status`, `message` and `retryable`; `instance` names this server
(omitted on 400 validation bodies, as Conductor omits it); `validationErrors` only on 400s
from validation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.secrets import masking

log = logging.getLogger("baton.errors")

VALIDATION_FAILED = "Validation failed, check below errors for detail."


class ConfigError(Exception):
    """The server cannot start as configured; the message is a one-line reason."""


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str
    invalid_value: Any = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"path": self.path, "message": self.message}
        # Like Conductor, echo only primitive invalid values, and never long ones.
        value = self.invalid_value
        short_text = isinstance(value, str) and len(value) <= 200
        if isinstance(value, bool | int | float) or short_text:
            body["invalidValue"] = value
        return body


class BatonError(Exception):
    status: int = 500
    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self, instance: str) -> dict[str, Any]:
        return {
            "status": self.status,
            "message": self.message,
            "instance": instance,
            "retryable": self.retryable,
        }


class BadRequest(BatonError):
    status = 400


class ValidationFailed(BadRequest):
    def __init__(self, errors: list[FieldError], message: str = VALIDATION_FAILED) -> None:
        super().__init__(message)
        self.errors = errors

    def body(self, instance: str) -> dict[str, Any]:
        return {
            "status": self.status,
            "message": self.message,
            "retryable": False,
            "validationErrors": [e.to_json() for e in self.errors],
        }


class Unauthorized(BatonError):
    """401 with a token error code the official clients key their refresh off."""

    status = 401

    def __init__(self, message: str, error: str = "INVALID_TOKEN") -> None:
        super().__init__(message)
        self.error = error

    def body(self, instance: str) -> dict[str, Any]:
        return {**super().body(instance), "error": self.error}


class Forbidden(BatonError):
    status = 403


class NotFound(BatonError):
    status = 404


class Conflict(BatonError):
    status = 409


class PreconditionFailed(BatonError):
    status = 412


class PayloadTooLarge(BatonError):
    status = 413


class TooManyRequests(BatonError):
    status = 429


class Transient(BatonError):
    """A passing fault (database busy, connection dropped): the client may retry."""

    status = 503
    retryable = True


def error_response(
    exc: BatonError, instance: str, masker: masking.Masker | None = None
) -> JSONResponse:
    # A message can quote input (a bad value, a failing URL); no secret value goes back out.
    body = exc.body(instance)
    return JSONResponse(masker.view(body) if masker else body, status_code=exc.status)


def _masker_of(request: Request) -> masking.Masker | None:
    services = getattr(request.app.state, "services", None)
    executor = getattr(services, "executor", None)
    masker = getattr(executor, "masker", None)
    return masker if isinstance(masker, masking.Masker) else None


def _loc_to_path(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    path = ""
    for p in parts:
        path += f"[{p}]" if p.isdigit() else (f".{p}" if path else p)
    return path or "body"


def from_request_validation(exc: RequestValidationError) -> BadRequest:
    errors = exc.errors()
    for err in errors:
        if err.get("type") == "json_invalid":
            return BadRequest(f"Malformed JSON in request body: {err.get('msg', 'invalid JSON')}")
    fields = [
        FieldError(
            _loc_to_path(tuple(e.get("loc", ()))), str(e.get("msg", "invalid")), e.get("input")
        )
        for e in errors
    ]
    return ValidationFailed(fields)


def install_error_handlers(app: FastAPI, instance: str) -> None:
    async def on_baton_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, BatonError)
        return error_response(exc, instance, _masker_of(request))

    async def on_request_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(from_request_validation(exc), instance, _masker_of(request))

    async def on_http_exception(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        message = exc.detail if isinstance(exc.detail, str) else "HTTP error"
        if exc.status_code == 404 and message == "Not Found":
            message = "No such resource"
        err = BatonError(message)
        err.status = exc.status_code
        return JSONResponse(err.body(instance), status_code=exc.status_code, headers=exc.headers)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The message stays generic: an exception text may carry data we must not echo.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(BatonError("Internal server error"), instance)

    app.add_exception_handler(BatonError, on_baton_error)
    app.add_exception_handler(RequestValidationError, on_request_validation)
    app.add_exception_handler(StarletteHTTPException, on_http_exception)
    app.add_exception_handler(Exception, on_unexpected)
