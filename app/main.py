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
from app.api import applications, health, hot, metadata, tasks, token, workflows
from app.api.deps import Services
from app.api.middleware import BodyLimitMiddleware, Metrics, MetricsMiddleware
from app.auth.service import AuthService
from app.clock import Clock, SystemClock
from app.config import Settings
from app.engine.catalog import TaskDefCache
from app.engine.executor import Executor
from app.engine.notify import Notifier, PostgresListener
from app.engine.runner import Runner
from app.errors import install_error_handlers
from app.secrets import masking, sealing
from app.services.events import install_events
from app.services.executions import ExecutionService
from app.services.metadata import MetadataService
from app.store.db import Database
from app.tasks.registry import install as install_tasks

SWAGGER_ASSETS = Path(swagger_ui_bundle.swagger_ui_path)


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()
    clock = clock or SystemClock()
    instance = settings.instance_id or socket.gethostname()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from app.secrets.keyring import load_keyring
        from app.secrets.service import SecretGrants, SecretService

        keyring = load_keyring(settings)  # first: a missing key must fail before anything opens
        db = Database(settings.database, pool_size=settings.db_pool_size)
        notifier = Notifier()
        task_defs = TaskDefCache()
        executor = Executor(db, clock, notifier, task_defs)
        metadata_service = MetadataService(db, clock)
        metadata_service.on_task_def_change = task_defs.invalidate
        metadata_service.on_workflow_def_change = executor.workflow_defs.invalidate
        auth = AuthService(db, clock, settings)
        try:
            await auth.start()  # signing key, first admin application
        except BaseException:
            await db.dispose()
            raise
        auth.grants = SecretGrants(db)
        app.state.services = Services(
            settings=settings,
            db=db,
            clock=clock,
            metrics=metrics,
            metadata=metadata_service,
            auth=auth,
            executor=executor,
            executions=ExecutionService(executor),
            secrets=SecretService(db, clock, settings, keyring, auth),
        )
        listener = None
        if db.dialect == "postgresql":
            listener = PostgresListener(settings.database.libpq_dsn(), notifier)
            await listener.start()
        secret_service = app.state.services.secrets
        # Stored `_secrets` subtrees are sealed with the same keyring as the secrets.
        sealing.install(keyring)
        masking.install_log_redaction()
        refresher = masking.KnownValuesRefresher(secret_service.known_values, executor.masker)
        await refresher.refresh()
        secret_service.on_change = refresher.soon
        executor.secrets = secret_service
        executor.poll_data_interval_ms = settings.poll_data_interval_ms
        installed = install_tasks(executor, settings, secrets=secret_service)
        install_events(executor)  # before the runner: it serves the event action queue
        runner = Runner(executor, sweep_interval_s=settings.sweep_interval_ms / 1000)
        app.state.services.runner = runner
        from app.scheduler.service import SchedulerService
        from app.scheduler.timer import SchedulerTimer

        scheduler = SchedulerService(
            db,
            clock,
            executor,
            metrics.registry,
            retention_days=settings.scheduler_retention_days,
            retention_per_schedule=settings.scheduler_retention_per_schedule,
        )
        app.state.services.scheduler = scheduler
        timer = SchedulerTimer(scheduler, rescan_s=settings.scheduler_rescan_ms / 1000)
        if settings.background_enabled and settings.scheduler_enabled:
            timer.start()
        if settings.background_enabled:
            runner.start()
            refresher.start_periodic()  # other processes' rotations reach this one's masks
        try:
            yield
        finally:
            await timer.stop()  # first: a firing in flight finishes before the rest stops
            await runner.stop()
            await refresher.stop()
            await installed.close()
            if listener is not None:
                await listener.stop()
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
    from app.api import events, secrets
    from app.api import scheduler as scheduler_api
    from app.api.search import task_search_router, workflow_search_router

    # Routes are matched in order, one by one (~140 of them): the worker and start
    # endpoints go first, so the busiest requests match in a few checks (each check costs
    # ~10 us). Within a prefix the order below matters: search before /{taskId} and
    # /{workflowId} (they would take "search" for an id), signals before the rest of
    # /api/tasks, bulk before the rest of /api/workflow.
    app.include_router(tasks.worker_router)
    app.include_router(workflows.start_router)
    app.include_router(task_search_router)
    app.include_router(events.signal_router)
    app.include_router(tasks.router)
    app.include_router(workflow_search_router)
    app.include_router(workflows.bulk_router)
    app.include_router(workflows.router)
    app.include_router(health.router)
    app.include_router(metadata.router)
    app.include_router(token.router)
    app.include_router(applications.router)
    app.include_router(secrets.router)
    app.include_router(secrets.grants_router)
    app.include_router(events.router)
    app.include_router(events.queue_router)
    app.include_router(scheduler_api.router)
    _mount_docs(app)
    hot.install(app)
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
            # The token pasted under "Authorize" survives a page reload.
            swagger_ui_parameters={"persistAuthorization": True},
        )
