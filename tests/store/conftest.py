from __future__ import annotations

import pytest
from fastapi import FastAPI

from app.engine.executor import Executor


@pytest.fixture
def ex(backend: str, api_app: FastAPI) -> Executor:
    """The app's executor, for behaviour only Postgres has (single-statement changes,
    cross-process wake-ups: SQLite is one process with one writer)."""
    if backend != "postgres":
        pytest.skip("a Postgres path")
    executor: Executor = api_app.state.services.executor
    return executor
