"""Dependencies routers declare; one place that knows where the services live."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.api.middleware import Metrics
from app.auth.service import AuthService
from app.clock import Clock
from app.config import Settings
from app.engine.executor import Executor
from app.engine.runner import Runner
from app.services.executions import ExecutionService
from app.services.metadata import MetadataService
from app.store.db import Database


@dataclass
class Services:
    settings: Settings
    db: Database
    clock: Clock
    metrics: Metrics
    metadata: MetadataService
    auth: AuthService
    executor: Executor
    executions: ExecutionService
    # Set once the background runner exists (tests drain it by hand).
    runner: Runner | None = None


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_metadata(request: Request) -> MetadataService:
    return get_services(request).metadata


def get_executions(request: Request) -> ExecutionService:
    return get_services(request).executions


ServicesDep = Annotated[Services, Depends(get_services)]
ExecutionsDep = Annotated[ExecutionService, Depends(get_executions)]
MetadataDep = Annotated[MetadataService, Depends(get_metadata)]


def get_auth(request: Request) -> AuthService:
    return get_services(request).auth


AuthDep = Annotated[AuthService, Depends(get_auth)]
