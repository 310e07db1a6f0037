"""Health, offline Swagger UI, the OpenAPI document and Prometheus metrics."""

from __future__ import annotations

import re

import httpx


async def test_health_answers_healthy(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["healthy"] is True


async def test_api_health_answers_the_same(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/health")).json()["healthy"] is True


async def test_openapi_document_is_served_at_api_docs(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/api-docs")).json()
    assert "/api/metadata/taskdefs" in spec["paths"]


async def test_swagger_ui_loads_no_asset_from_another_host(client: httpx.AsyncClient) -> None:
    page = (await client.get("/docs")).text
    assert "swagger-ui" in page
    external = re.findall(r"""(?:src|href)=["'](https?://[^"']+)""", page)
    assert external == []


async def test_swagger_ui_assets_are_served_by_baton(client: httpx.AsyncClient) -> None:
    page = (await client.get("/docs")).text
    for asset in re.findall(r"""(?:src|href)=["'](/docs-assets/[^"']+)""", page):
        assert (await client.get(asset)).status_code == 200


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/api/metadata/taskdefs/unknown")
    text = (await client.get("/metrics")).text
    assert (
        'baton_http_requests_total{method="GET",route="/api/metadata/taskdefs/{tasktype}",'
        'status="404"} 1.0'
    ) in text
    assert "baton_http_request_duration_seconds_bucket" in text
