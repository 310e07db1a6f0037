"""Bad input of every kind gets a clear 4xx in Conductor's error shape, and writes nothing."""

from __future__ import annotations

import httpx

from app.config import Settings


async def test_malformed_json_is_400_with_a_clear_message(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/metadata/taskdefs",
        content=b'[{"name": "x",',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["message"].startswith("Malformed JSON")
    assert body["retryable"] is False


async def test_missing_body_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/metadata/workflow", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400


async def test_body_over_the_limit_is_413_and_writes_nothing(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    big = "x" * (settings.max_body_bytes + 1)
    response = await client.post("/api/metadata/taskdefs", json=[{"name": "x", "description": big}])
    assert response.status_code == 413
    assert response.json()["status"] == 413
    assert (await client.get("/api/metadata/taskdefs")).json() == []


async def test_chunked_body_over_the_limit_is_413(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    chunk = b"x" * 65536
    count = settings.max_body_bytes // len(chunk) + 2

    async def body() -> object:
        for _ in range(count):
            yield chunk

    response = await client.post(
        "/api/metadata/taskdefs",
        content=body(),  # type: ignore[arg-type]
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413


async def test_unknown_route_is_404_in_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/nothing/here")
    assert response.status_code == 404
    assert response.json()["status"] == 404


async def test_wrong_method_is_405_in_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.patch("/api/metadata/taskdefs")
    assert response.status_code == 405
    assert response.json()["status"] == 405


async def test_non_integer_path_parameter_is_400(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/metadata/workflow/wf/one")
    assert response.status_code == 400
