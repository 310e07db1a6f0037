"""Health and Prometheus metrics."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.deps import ServicesDep
from app.auth.permissions import Permission, require
from app.config import Settings
from app.errors import NotFound

router = APIRouter(tags=["health"])
log = logging.getLogger("baton.health")


@router.get("/health", summary="Server health")
@router.get("/api/health", summary="Server health")
async def health(services: ServicesDep) -> Response:
    try:
        await services.db.ping()
    except Exception as exc:  # any failure means "not healthy"; the reason goes to the log
        log.warning("health check: database unreachable: %s", type(exc).__name__)
        return JSONResponse(
            {"healthy": False, "healthResults": [{"name": "database", "healthy": False}]},
            status_code=503,
        )
    return JSONResponse({"healthy": True, "healthResults": [{"name": "database", "healthy": True}]})


def _metrics_public(settings: Settings) -> bool:
    return settings.metrics_public


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    include_in_schema=False,
    # Open unless BATON_METRICS_PUBLIC=false; then a token with METRICS_READ (USER and up).
    dependencies=[require(Permission.METRICS_READ, open_if=_metrics_public)],
)
async def metrics(services: ServicesDep) -> Response:
    if not services.settings.metrics_enabled:
        raise NotFound("Metrics are disabled (BATON_METRICS_ENABLED=false)")
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
