"""Every route sits behind the permission check, except the few that are open on purpose.

The route table is walked, not listed: a route added later without `require(...)` fails
these tests.
"""

from __future__ import annotations

import base64
import json
import re

import httpx
import jwt
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.routing import Mount

from app.api.hot import HOT_ROUTES
from app.auth.permissions import ROLE_PERMISSIONS, Permission, Requirement, Role
from app.clock import ManualClock
from app.config import Settings
from tests.conftest import TokenFor, asgi_client

# Open on purpose: health, the API description and its UI, and the token endpoint itself.
OPEN_PATHS = {"/health", "/api/health", "/api-docs", "/docs", "/api/token"}
OPEN_MOUNTS = {"/docs-assets"}
# /metrics is open by default (BATON_METRICS_PUBLIC=true); tested separately.
SETTING_DEPENDENT = {"/metrics"}


def _requirements(route: RouteContext) -> list[Requirement]:
    found: list[Requirement] = []
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        if isinstance(dependant.call, Requirement):
            found.append(dependant.call)
        stack.extend(dependant.dependencies)
    return found


def _secured_routes(app: FastAPI) -> list[RouteContext]:
    """Every effective route (included routers flattened) that is not open on purpose."""
    routes = []
    for route in iter_route_contexts(app.routes):
        # The lean routes of app/api/hot.py shadow FastAPI routes that are in this table too;
        # requests to those paths reach the lean ones, so the calls below check them as well.
        if route.original_route in HOT_ROUTES:
            continue
        if isinstance(route.original_route, Mount):
            assert route.path in OPEN_MOUNTS, f"unexpected mount {route.path}"
            continue
        if route.path in OPEN_PATHS or route.path in SETTING_DEPENDENT:
            continue
        assert isinstance(route.original_route, APIRoute), f"{route.path} is not an API route"
        routes.append(route)
    return routes


def _calls(app: FastAPI) -> list[tuple[str, str, RouteContext]]:
    calls = []
    for route in _secured_routes(app):
        assert route.path is not None
        path = re.sub(r"\{[^}]+\}", "1", route.path)
        for method in sorted((route.methods or set()) - {"HEAD", "OPTIONS"}):
            calls.append((method, path, route))
    return calls


async def _answers(
    client: httpx.AsyncClient, app: FastAPI, headers: dict[str, str]
) -> list[tuple[str, str, int, dict[str, object]]]:
    out = []
    for method, path, _route in _calls(app):
        response = await client.request(method, path, headers=headers)
        try:
            body = response.json()
        except ValueError:
            body = {}
        out.append((method, path, response.status_code, body if isinstance(body, dict) else {}))
    return out


def _rejected_with(
    answers: list[tuple[str, str, int, dict[str, object]]], status: int, error: str | None
) -> list[str]:
    """The calls that were NOT answered with `status` and token error `error`."""
    return [
        f"{method} {path} -> {code} {body}"
        for method, path, code, body in answers
        if code != status or body.get("error") != error
    ]


def _assert_all_rejected(
    answers: list[tuple[str, str, int, dict[str, object]]], status: int, error: str
) -> None:
    wrong = _rejected_with(answers, status, error)
    assert not wrong, f"not answered {status} {error}:\n" + "\n".join(wrong)


def _admin_claims(token: str) -> dict[str, object]:
    claims: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return claims


def test_the_route_table_has_secured_routes_from_every_router(api_app: FastAPI) -> None:
    paths = {route.path for route in _secured_routes(api_app)}
    assert "/api/metadata/taskdefs" in paths
    assert "/api/applications" in paths
    assert "/api/token/userInfo" in paths


def test_every_non_open_route_declares_a_permission(api_app: FastAPI) -> None:
    missing = [
        f"{sorted(r.methods or [])} {r.path}"
        for r in _secured_routes(api_app)
        if not _requirements(r)
    ]
    assert not missing, "routes without require(...):\n" + "\n".join(missing)


async def test_every_non_open_route_rejects_a_missing_token(
    anon_client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    answers = await _answers(anon_client, api_app, {})
    _assert_all_rejected(answers, 401, "INVALID_TOKEN")
    assert {body.get("message") for *_, body in answers} == {"Token cannot be null or empty"}


async def test_every_non_open_route_rejects_an_expired_token(
    anon_client: httpx.AsyncClient, api_app: FastAPI, token_for: TokenFor, clock: ManualClock
) -> None:
    token = await token_for(Role.ADMIN)
    clock.advance(7200 * 1000)
    answers = await _answers(anon_client, api_app, {"X-Authorization": token})
    _assert_all_rejected(answers, 401, "EXPIRED_TOKEN")


async def test_every_non_open_route_rejects_a_token_signed_with_another_key(
    anon_client: httpx.AsyncClient, api_app: FastAPI, token_for: TokenFor
) -> None:
    claims = _admin_claims(await token_for(Role.ADMIN))
    forged = jwt.encode(claims, "another-signing-key-of-at-least-32-bytes", algorithm="HS256")
    answers = await _answers(anon_client, api_app, {"X-Authorization": forged})
    _assert_all_rejected(answers, 401, "INVALID_TOKEN")


async def test_every_non_open_route_rejects_a_tampered_token(
    anon_client: httpx.AsyncClient, api_app: FastAPI, token_for: TokenFor
) -> None:
    header, payload, signature = (await token_for(Role.WORKER)).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["roles"] = ["ADMIN"]
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    answers = await _answers(
        anon_client, api_app, {"X-Authorization": f"{header}.{payload}.{signature}"}
    )
    _assert_all_rejected(answers, 401, "INVALID_TOKEN")


async def test_a_worker_token_is_forbidden_everywhere_a_worker_has_no_permission(
    anon_client: httpx.AsyncClient, api_app: FastAPI, token_for: TokenFor
) -> None:
    token = await token_for(Role.WORKER)
    worker = ROLE_PERMISSIONS[Role.WORKER] | {Permission.AUTHENTICATED}
    failures = []
    checked = 0
    for method, path, route in _calls(api_app):
        if all(r.permission in worker for r in _requirements(route)):
            continue
        checked += 1
        response = await anon_client.request(method, path, headers={"X-Authorization": token})
        body = response.json()
        # 403 in the general error shape, without a token error code (no refresh loop).
        if response.status_code != 403 or "error" in body or body.get("status") != 403:
            failures.append(f"{method} {path} -> {response.status_code} {body}")
    assert checked > 0
    assert not failures, "not answered 403:\n" + "\n".join(failures)


async def test_a_bearer_authorization_header_is_accepted_for_curl_users(
    anon_client: httpx.AsyncClient, token_for: TokenFor
) -> None:
    token = await token_for(Role.USER)
    response = await anon_client.get(
        "/api/metadata/taskdefs", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200


async def test_open_routes_answer_without_a_token(anon_client: httpx.AsyncClient) -> None:
    for path in ("/health", "/api/health", "/api-docs", "/docs", "/metrics"):
        assert (await anon_client.get(path)).status_code == 200, path


async def test_openapi_declares_the_x_authorization_scheme_for_swagger_authorize(
    anon_client: httpx.AsyncClient,
) -> None:
    spec = (await anon_client.get("/api-docs")).json()
    scheme = spec["components"]["securitySchemes"]["X-Authorization"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "X-Authorization")
    taskdefs = spec["paths"]["/api/metadata/taskdefs"]["get"]
    assert {"X-Authorization": []} in taskdefs["security"]
    assert "security" not in spec["paths"]["/api/token"]["post"]


async def test_metrics_need_a_token_when_not_public(
    settings: Settings, clock: ManualClock, api_app: FastAPI
) -> None:
    from app.main import create_app

    private = settings.model_copy(update={"metrics_public": False})
    app = create_app(private, clock=clock)
    async with app.router.lifespan_context(app), asgi_client(app) as anon:
        missing = await anon.get("/metrics")
        assert (missing.status_code, missing.json()["error"]) == (401, "INVALID_TOKEN")
        token = (
            await anon.post(
                "/api/token",
                json={"keyId": settings.admin_key_id, "keySecret": _secret(settings)},
            )
        ).json()["token"]
        assert (await anon.get("/metrics", headers={"X-Authorization": token})).status_code == 200


def _secret(settings: Settings) -> str:
    assert settings.admin_key_secret is not None
    return settings.admin_key_secret.get_secret_value()


@pytest.mark.parametrize("path", ["/api/metadata/taskdefs", "/api/applications"])
async def test_with_auth_disabled_every_request_acts_as_an_anonymous_admin(
    settings: Settings, clock: ManualClock, path: str
) -> None:
    from app.main import create_app

    app = create_app(settings.model_copy(update={"auth_enabled": False}), clock=clock)
    async with app.router.lifespan_context(app), asgi_client(app) as anon:
        assert (await anon.get(path)).status_code == 200
