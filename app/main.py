"""create_app(): routers, error handlers, middlewares and the lifespan of the services."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from app import __version__
from app.api import health, metadata
from app.api.deps import Services
from app.api.middleware import BodyLimitMiddleware, Metrics, MetricsMiddleware
from app.clock import Clock, SystemClock
from app.config import Settings
from app.errors import install_error_handlers
from app.services.metadata import MetadataService
from app.store.db import Database

SWAGGER_ASSETS = Path(swagger_ui_bundle.swagger_ui_path)


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()
    clock = clock or SystemClock()
    instance = settings.instance_id or socket.gethostname()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.database, pool_size=settings.db_pool_size)
        app.state.services = Services(
            settings=settings,
            db=db,
            clock=clock,
            metrics=metrics,
            metadata=MetadataService(db, clock),
        )
        try:
            yield
        finally:
            await db.dispose()

    app = FastAPI(
        title="Baton",
        version=__version__,
        description="A workflow orchestration server that speaks Conductor's REST API.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/api-docs",
    )
    install_error_handlers(app, instance)
    app.include_router(health.router)
    app.include_router(metadata.router)
    _mount_docs(app)
    # Outermost first: metrics see every answer, including 413s from the body guard.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, instance=instance)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _mount_docs(app: FastAPI) -> None:
    """Swagger UI with its assets served by Baton itself, so /docs works offline."""
    app.mount("/docs-assets", StaticFiles(directory=SWAGGER_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/api-docs",
            title="Baton API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )
