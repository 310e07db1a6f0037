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
from app.scheduler.service import SchedulerService
from app.secrets.service import SecretService
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
    secrets: SecretService | None = None
    scheduler: SchedulerService | None = None


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


# Dependencies are `async def`: FastAPI runs a plain `def` dependency in a worker thread, a
# hop per request that costs more than the lookup itself.
async def get_services(request: Request) -> Services:
    return services_of(request)


async def get_metadata(request: Request) -> MetadataService:
    return services_of(request).metadata


async def get_executions(request: Request) -> ExecutionService:
    return services_of(request).executions


ServicesDep = Annotated[Services, Depends(get_services)]
ExecutionsDep = Annotated[ExecutionService, Depends(get_executions)]
MetadataDep = Annotated[MetadataService, Depends(get_metadata)]


async def get_auth(request: Request) -> AuthService:
    return services_of(request).auth


AuthDep = Annotated[AuthService, Depends(get_auth)]


async def get_secrets(request: Request) -> SecretService:
    service = services_of(request).secrets
    if service is None:
        raise RuntimeError("the secret service is not running")
    return service


SecretsDep = Annotated[SecretService, Depends(get_secrets)]


async def get_scheduler(request: Request) -> SchedulerService:
    service = services_of(request).scheduler
    if service is None:
        raise RuntimeError("the scheduler service is not running")
    return service


SchedulerDep = Annotated[SchedulerService, Depends(get_scheduler)]
