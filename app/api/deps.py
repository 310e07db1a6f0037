"""Dependencies routers declare; one place that knows where the services live."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.api.middleware import Metrics
from app.clock import Clock
from app.config import Settings
from app.services.metadata import MetadataService
from app.store.db import Database


@dataclass
class Services:
    settings: Settings
    db: Database
    clock: Clock
    metrics: Metrics
    metadata: MetadataService


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_metadata(request: Request) -> MetadataService:
    return get_services(request).metadata


ServicesDep = Annotated[Services, Depends(get_services)]
MetadataDep = Annotated[MetadataService, Depends(get_metadata)]
