"""The headline story (orkes-features.md 0), on a real server process: a workflow exchanges an
application's access key (kept as two secrets) for a token at Baton's own /api/token, filters
the token out of the response into `_secrets`, stores it with UPDATE_SECRET; a second workflow
calls a protected endpoint with `${workflow.secrets.my_secret_holding_a_token}`. Then the leak
check: neither the token nor the key secret shows in any API response, log line or row."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from app.store.db import Database
from app.store.urls import parse_database_url
from tests.conftest import REPO_ROOT, ServerProcess
from tests.e2e.support import admin_client, wait_for_statuses

EXAMPLE = REPO_ROOT / "examples" / "rotate-token"
DONE = frozenset({"COMPLETED", "FAILED", "TERMINATED", "TIMED_OUT"})


def example(name: str, server_url: str) -> dict[str, Any]:
    """An example file with its Baton address pointed at the test server."""
    text = (EXAMPLE / name).read_text().replace("http://127.0.0.1:8080", server_url)
    loaded: dict[str, Any] = json.loads(text)
    return loaded


async def provision(c: httpx.AsyncClient, server_url: str) -> tuple[str, str]:
    """The tracker application, its access key stored as secrets, both workflows registered."""
    r = await c.post("/api/applications", json={"name": "tracker-app"})
    assert r.status_code == 200, r.text
    app_id = r.json()["id"]
    assert (await c.post(f"/api/applications/{app_id}/roles/WORKER")).status_code == 200
    key = (await c.post(f"/api/applications/{app_id}/accessKeys")).json()
    for name, value in (("appKeyId", key["id"]), ("appKeySecret", key["secret"])):
        r = await c.put(
            f"/api/secrets/{name}", content=value, headers={"content-type": "text/plain"}
        )
        assert r.status_code == 200, r.text
    definitions = [
        example("update_rotate_secrets_tracker_app.json", server_url),
        example("use_rotated_token.json", server_url),
    ]
    r = await c.put("/api/metadata/workflow", json=definitions)
    assert r.status_code == 200, r.text
    return app_id, key["secret"]


async def run(c: httpx.AsyncClient, name: str) -> tuple[str, dict[str, Any]]:
    r = await c.post(f"/api/workflow/{name}", json={})
    assert r.status_code == 200, r.text
    workflow_id = r.text
    await wait_for_statuses(c, [workflow_id], 30, DONE)
    body: dict[str, Any] = (await c.get(f"/api/workflow/{workflow_id}")).json()
    return workflow_id, body


async def every_read(c: httpx.AsyncClient, workflow_ids: list[str]) -> str:
    """The text of every read path that can show a workflow's data."""
    texts: list[str] = []
    for workflow_id in workflow_ids:
        wf = await c.get(f"/api/workflow/{workflow_id}", params={"includeTasks": True})
        texts.append(wf.text)
        texts.append((await c.get(f"/api/workflow/{workflow_id}/tasks")).text)
        for task in wf.json()["tasks"]:
            texts.append((await c.get(f"/api/tasks/{task['taskId']}")).text)
            texts.append((await c.get(f"/api/tasks/{task['taskId']}/log")).text)
    for path in ("/api/workflow/search", "/api/workflow/search-v2"):
        texts.append((await c.get(path, params={"query": "", "size": 100})).text)
    for path in ("/api/tasks/search", "/api/tasks/search-v2"):
        texts.append((await c.get(path, params={"size": 100})).text)
    return "\n".join(texts)


async def database_text(database_url: str) -> bytes:
    """Every stored byte: the SQLite files as they are on disk, or every Postgres row."""
    url = parse_database_url(database_url)
    if url.dialect == "sqlite":
        assert url.sqlite_path is not None
        path = Path(url.sqlite_path)
        files = [path, path.with_name(path.name + "-wal")]
        return b"".join(f.read_bytes() for f in files if f.exists())
    db = Database(url)
    try:
        async with db.read() as conn:
            tables = (
                await conn.execute(
                    sa.text(
                        "SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = 'public'"
                    )
                )
            ).scalars()
            dump: list[str] = []
            for table in list(tables):
                rows = await conn.execute(sa.text(f'SELECT row_to_json(t)::text FROM "{table}" t'))
                dump.extend(rows.scalars())
    finally:
        await db.dispose()
    return "\n".join(dump).encode()


@pytest.mark.timeout(120)
async def test_rotation_story_keeps_a_working_token_in_the_secret_and_leaks_nothing(
    server: ServerProcess, database_url: str
) -> None:
    async with admin_client(server.url) as c:
        _, key_secret = await provision(c, server.url)

        rotate_id, rotated = await run(c, "update_rotate_secrets_tracker_app")
        assert rotated["status"] == "COMPLETED", rotated.get("reasonForIncompletion")
        # The filtered output replaced the response, and both subtrees read as masked.
        fetch, update = rotated["tasks"]
        assert fetch["outputData"] == {"_secrets": "***"}
        assert update["inputData"] == {"_secrets": "***"}
        assert update["outputData"] == {}
        # Stored input keeps the references, never the values.
        assert fetch["inputData"]["body"] == {
            "keyId": "${workflow.secrets.appKeyId}",
            "keySecret": "${workflow.secrets.appKeySecret}",
        }

        token = (await c.get("/api/secrets/my_secret_holding_a_token")).text
        assert token.count(".") == 2  # a JWT
        who = await c.get("/api/token/userInfo", headers={"X-Authorization": token}, auth=None)
        assert who.status_code == 200 and who.json()["name"] == "tracker-app"

        use_id, used = await run(c, "use_rotated_token")
        assert used["status"] == "COMPLETED", used.get("reasonForIncompletion")
        assert used["output"] == {"statusCode": 200, "application": "tracker-app"}

        reads = await every_read(c, [rotate_id, use_id])
    for leaked in (token, key_secret):
        assert leaked not in reads
        assert leaked not in server.log()
        assert leaked.encode() not in await database_text(database_url)


@pytest.mark.timeout(120)
async def test_a_second_rotation_replaces_the_token_with_a_new_version(
    server: ServerProcess,
) -> None:
    async with admin_client(server.url) as c:
        await provision(c, server.url)
        await run(c, "update_rotate_secrets_tracker_app")
        first = (await c.get("/api/secrets/my_secret_holding_a_token")).text
        _, again = await run(c, "update_rotate_secrets_tracker_app")
        assert again["status"] == "COMPLETED"
        second = (await c.get("/api/secrets/my_secret_holding_a_token")).text
        versions = (await c.get("/api/secrets/my_secret_holding_a_token/versions")).json()
    assert second != first
    assert len(versions) == 2
    assert all(first not in json.dumps(v) and second not in json.dumps(v) for v in versions)


@pytest.mark.timeout(120)
async def test_a_schedule_keeps_the_token_fresh_and_its_history_leaks_nothing(
    server: ServerProcess,
) -> None:
    """The story as published: the rotation runs from a cron schedule (every 2 s here), as
    the schedule's creator; each run writes a new version of the token."""
    async with admin_client(server.url) as c:
        _, key_secret = await provision(c, server.url)
        body = json.loads((EXAMPLE / "schedule.json").read_text())
        body["cronExpression"] = "*/2 * * * * *"
        r = await c.post("/api/scheduler/schedules", json=body)
        assert r.status_code == 200, r.text
        versions: list[dict[str, Any]] = []
        deadline = asyncio.get_running_loop().time() + 30
        while asyncio.get_running_loop().time() < deadline and len(versions) < 2:
            await asyncio.sleep(0.5)
            v = await c.get("/api/secrets/my_secret_holding_a_token/versions")
            versions = v.json() if v.status_code == 200 else []
        assert (await c.put(f"/api/scheduler/schedules/{body['name']}/pause")).status_code == 200
        assert len(versions) >= 2, "the schedule did not rotate the token twice in 30 s"
        assert all(v["writtenBy"].startswith("workflow:") for v in versions)
        metadata = (await c.get("/api/secrets/my_secret_holding_a_token/metadata")).json()
        assert metadata["lastRotatedBy"] == versions[0]["writtenBy"]
        history = await c.get(
            "/api/scheduler/search/executions", params={"query": "*", "size": 100}
        )
        records = history.json()["results"]
        assert records and all(r["state"] == "EXECUTED" for r in records)

        token = (await c.get("/api/secrets/my_secret_holding_a_token")).text
        _, used = await run(c, "use_rotated_token")
        assert used["output"] == {"statusCode": 200, "application": "tracker-app"}
        reads = await every_read(c, [r["workflowId"] for r in records]) + history.text
    for leaked in (token, key_secret):
        assert leaked not in reads
        assert leaked not in server.log()
