"""Helpers the workflow API tests share: definitions of SIMPLE-task flows and registering."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

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


# -- system-task flows ---------------------------------------------------------------


def simple(ref: str, name: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name or f"w_{ref}", "taskReferenceName": ref, "type": "SIMPLE", **extra}


async def run(
    client: httpx.AsyncClient,
    tasks: list[dict[str, Any]],
    wf_input: dict[str, Any] | None = None,
    name: str = "sys_flow",
    **extra: Any,
) -> str:
    definition = {"name": name, "version": 1, "tasks": tasks, **extra}
    r = await client.post("/api/metadata/workflow", params={"overwrite": "true"}, json=definition)
    assert r.status_code == 200, r.text
    r = await client.post(f"/api/workflow/{name}", json=wf_input or {})
    assert r.status_code == 200, r.text
    return r.text


async def wf(client: httpx.AsyncClient, workflow_id: str) -> dict[str, Any]:
    r = await client.get(f"/api/workflow/{workflow_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def work(
    client: httpx.AsyncClient,
    task_type: str,
    output: dict[str, Any] | None = None,
    status: str = "COMPLETED",
) -> dict[str, Any]:
    r = await client.get(f"/api/tasks/poll/{task_type}", params={"workerid": "t"})
    assert r.status_code == 200, f"no {task_type} task to poll"
    task: dict[str, Any] = r.json()
    result = {
        "workflowInstanceId": task["workflowInstanceId"],
        "taskId": task["taskId"],
        "status": status,
        "outputData": output or {},
    }
    assert (await client.post("/api/tasks", json=result)).status_code == 200
    return task


async def drain(api_app: FastAPI) -> int:
    runner = api_app.state.services.runner
    assert runner is not None
    done: int = await runner.drain()
    return done


def refs(body: dict[str, Any]) -> list[str]:
    return [t["referenceTaskName"] for t in body["tasks"]]


def task_of(body: dict[str, Any], ref: str) -> dict[str, Any]:
    """The latest attempt of the task `ref` in a workflow body."""
    found: dict[str, Any] = [t for t in body["tasks"] if t["referenceTaskName"] == ref][-1]
    return found
