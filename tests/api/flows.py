"""Helpers the workflow API tests share: definitions of SIMPLE-task flows and registering."""

from __future__ import annotations

from typing import Any

import httpx

Json = dict[str, Any]


def flow(name: str = "flow", refs: tuple[str, ...] = ("a", "b"), **extra: Any) -> Json:
    """A workflow of SIMPLE tasks `task_<ref>`, each taking `x` from the workflow input."""
    return {
        "name": name,
        "version": 1,
        "tasks": [
            {
                "name": f"task_{ref}",
                "taskReferenceName": ref,
                "type": "SIMPLE",
                "inputParameters": {"x": "${workflow.input.x}"},
            }
            for ref in refs
        ],
        **extra,
    }


async def register(client: httpx.AsyncClient, definition: Json) -> None:
    response = await client.post("/api/metadata/workflow", json=definition)
    assert response.status_code == 200, response.text


async def task_defs(client: httpx.AsyncClient, *defs: Json) -> None:
    response = await client.post("/api/metadata/taskdefs", json=list(defs))
    assert response.status_code == 200, response.text
