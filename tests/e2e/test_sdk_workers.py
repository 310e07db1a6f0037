"""The official conductor-python SDK's TaskHandler runs @worker_task workers against a real
server process: SIMPLE tasks complete; a worker that raises makes the task retry, then the
workflow fail with Conductor's reason text."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_KEY_ID, ADMIN_KEY_SECRET, REPO_ROOT, ServerProcess
from tests.e2e.support import admin_client, wait_for_statuses

ENDED = frozenset({"COMPLETED", "FAILED", "TERMINATED", "TIMED_OUT"})


@pytest.fixture
def sdk_workers(server: ServerProcess, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "CONDUCTOR_SERVER_URL": f"{server.url}/api",
        "CONDUCTOR_AUTH_KEY": ADMIN_KEY_ID,
        "CONDUCTOR_AUTH_SECRET": ADMIN_KEY_SECRET,
    }
    log = (tmp_path / "sdk-workers.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.sdk_worker_app"],
        env=env,
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


async def _setup(c: httpx.AsyncClient) -> None:
    defs = [
        {"name": "sdk_add", "retryCount": 0},
        {"name": "sdk_double", "retryCount": 0},
        {"name": "sdk_explode", "retryCount": 1, "retryDelaySeconds": 0},
    ]
    assert (await c.post("/api/metadata/taskdefs", json=defs)).status_code == 200
    flows = [
        {
            "name": "sdk_math",
            "version": 1,
            "tasks": [
                {
                    "name": "sdk_add",
                    "taskReferenceName": "add",
                    "inputParameters": {"a": "${workflow.input.a}", "b": "${workflow.input.b}"},
                },
                {
                    "name": "sdk_double",
                    "taskReferenceName": "double",
                    "inputParameters": {"value": "${add.output.sum}"},
                },
            ],
            "outputParameters": {"result": "${double.output.doubled}"},
        },
        {
            "name": "sdk_fail",
            "version": 1,
            "tasks": [
                {
                    "name": "sdk_explode",
                    "taskReferenceName": "explode",
                    "inputParameters": {"value": "${workflow.input.value}"},
                }
            ],
        },
    ]
    assert (await c.put("/api/metadata/workflow", json=flows)).status_code == 200


@pytest.mark.timeout(180)
async def test_sdk_workers_complete_workflows_of_simple_tasks(
    server: ServerProcess, sdk_workers: subprocess.Popen[bytes]
) -> None:
    async with admin_client(server.url) as c:
        await _setup(c)
        ids = []
        for n in range(5):
            r = await c.post("/api/workflow/sdk_math", json={"a": n, "b": 1})
            ids.append(r.text)
        statuses = await wait_for_statuses(c, ids, 120, ENDED)
        assert set(statuses.values()) == {"COMPLETED"}, statuses
        outputs = [(await c.get(f"/api/workflow/{i}")).json()["output"] for i in ids]
        assert outputs == [{"result": (n + 1) * 2} for n in range(5)]


@pytest.mark.timeout(180)
async def test_a_raising_sdk_worker_retries_then_fails_the_workflow(
    server: ServerProcess, sdk_workers: subprocess.Popen[bytes]
) -> None:
    async with admin_client(server.url) as c:
        await _setup(c)
        workflow_id = (await c.post("/api/workflow/sdk_fail", json={"value": 7})).text
        statuses = await wait_for_statuses(c, [workflow_id], 120, ENDED)
        assert statuses[workflow_id] == "FAILED"
        wf = (await c.get(f"/api/workflow/{workflow_id}")).json()
        attempts = [t for t in wf["tasks"] if t["referenceTaskName"] == "explode"]
        assert [t["retryCount"] for t in attempts] == [0, 1]
        last = attempts[-1]
        assert wf["reasonForIncompletion"] == (
            f"Task {last['taskId']} failed with status: FAILED and reason: 'cannot handle 7'"
        )
