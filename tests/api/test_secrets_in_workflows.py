"""Secrets inside workflows: `${workflow.secrets...}` resolved just in time, `_secrets`
masking, value-based masking, `outputFilter`, and the UPDATE_SECRET task (orkes-features.md
1.5-1.7, 2, 3, 4 and the traps of section 10)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.auth.permissions import Role
from tests.api.flows import drain, run, simple, wf, work
from tests.conftest import TokenFor


async def put_secret(client: httpx.AsyncClient, name: str, value: str) -> None:
    r = await client.put(
        f"/api/secrets/{name}", content=value, headers={"content-type": "text/plain"}
    )
    assert r.status_code == 200, r.text


async def poll(client: httpx.AsyncClient, task_type: str) -> dict[str, Any]:
    r = await client.get(f"/api/tasks/poll/{task_type}", params={"workerid": "t"})
    assert r.status_code == 200, f"no {task_type} task to poll: {r.status_code}"
    task: dict[str, Any] = r.json()
    return task


async def complete(
    client: httpx.AsyncClient,
    task: dict[str, Any],
    output: dict[str, Any],
    status: str = "COMPLETED",
) -> None:
    result = {
        "workflowInstanceId": task["workflowInstanceId"],
        "taskId": task["taskId"],
        "status": status,
        "outputData": output,
    }
    r = await client.post("/api/tasks", json=result)
    assert r.status_code == 200, r.text


def with_token(client: httpx.AsyncClient, token: str) -> dict[str, str]:
    return {"X-Authorization": token}


# -- references -------------------------------------------------------------------------


async def test_worker_receives_the_secret_value_while_the_stored_input_keeps_the_reference(
    client: httpx.AsyncClient,
) -> None:
    await put_secret(client, "api_key", "k-123456789")
    workflow_id = await run(
        client, [simple("a", inputParameters={"key": "${workflow.secrets.api_key}"})]
    )
    task = await poll(client, "w_a")
    assert task["inputData"]["key"] == "k-123456789"
    stored = (await wf(client, workflow_id))["tasks"][0]
    assert stored["inputData"]["key"] == "${workflow.secrets.api_key}"


async def test_an_embedded_reference_is_interpolated_into_the_string(
    client: httpx.AsyncClient,
) -> None:
    await put_secret(client, "tok", "abc-token-1")
    await run(client, [simple("a", inputParameters={"h": "Bearer ${workflow.secrets.tok}"})])
    assert (await poll(client, "w_a"))["inputData"]["h"] == "Bearer abc-token-1"


async def test_a_json_path_after_the_name_reads_into_a_json_secret(
    client: httpx.AsyncClient,
) -> None:
    await put_secret(client, "db-credentials", '{"username": "svc", "port": 5432}')
    params = {
        "user": "${workflow.secrets.db-credentials.username}",
        "port": "${workflow.secrets.db-credentials.port}",
    }
    await run(client, [simple("a", inputParameters=params)])
    assert (await poll(client, "w_a"))["inputData"] == {"user": "svc", "port": 5432}


async def test_a_missing_secret_fails_the_task_terminally_with_a_clear_reason(
    client: httpx.AsyncClient,
) -> None:
    workflow_id = await run(
        client, [simple("a", inputParameters={"k": "${workflow.secrets.nope}"})]
    )
    r = await client.get("/api/tasks/poll/w_a", params={"workerid": "t"})
    assert r.status_code == 204  # the worker never sees a task it cannot be given
    body = await wf(client, workflow_id)
    assert body["status"] == "FAILED"
    assert body["tasks"][0]["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert body["tasks"][0]["reasonForIncompletion"] == "Secret 'nope' not found or not accessible"


async def test_a_workflow_started_without_secret_read_cannot_resolve_secrets(
    client: httpx.AsyncClient, anon_client: httpx.AsyncClient, token_for: TokenFor
) -> None:
    await put_secret(client, "guarded", "guarded-value")
    definition = {
        "name": "reads_secret",
        "version": 1,
        "tasks": [simple("a", inputParameters={"k": "${workflow.secrets.guarded}"})],
    }
    assert (await client.post("/api/metadata/workflow", json=definition)).status_code == 200
    manager = await token_for(Role.WORKFLOW_MANAGER)
    r = await anon_client.post(
        "/api/workflow/reads_secret", json={}, headers=with_token(anon_client, manager)
    )
    assert r.status_code == 200, r.text
    assert (await client.get("/api/tasks/poll/w_a")).status_code == 204
    task = (await wf(client, r.text))["tasks"][0]
    assert task["reasonForIncompletion"] == "Secret 'guarded' not found or not accessible"


async def test_a_reference_arriving_as_data_is_not_resolved(client: httpx.AsyncClient) -> None:
    """Only the definition's own templates are resolved at hand-off: a workflow input that
    spells a reference stays text (no way to read a secret by smuggling its name in)."""
    await put_secret(client, "crown_jewels", "jewels-value-1")
    await run(
        client,
        [simple("a", inputParameters={"x": "${workflow.input.x}", "y": "y ${workflow.input.x}"})],
        {"x": "${workflow.secrets.crown_jewels}"},
    )
    task = await poll(client, "w_a")
    assert task["inputData"] == {
        "x": "${workflow.secrets.crown_jewels}",
        "y": "y ${workflow.secrets.crown_jewels}",
    }


async def test_a_rotated_secret_is_seen_by_the_next_hand_off(
    client: httpx.AsyncClient,
) -> None:
    await put_secret(client, "rot", "value-one-1")
    step = {"k": "${workflow.secrets.rot}"}
    await run(client, [simple("a", inputParameters=step), simple("b", inputParameters=step)])
    assert (await work(client, "w_a"))["inputData"]["k"] == "value-one-1"
    await put_secret(client, "rot", "value-two-2")
    assert (await poll(client, "w_b"))["inputData"]["k"] == "value-two-2"


async def test_system_tasks_receive_secret_values_too(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    await put_secret(client, "greeting", "hello-secret")
    tasks = [
        {
            "name": "js",
            "taskReferenceName": "js",
            "type": "INLINE",
            "inputParameters": {
                "evaluatorType": "javascript",
                "g": "${workflow.secrets.greeting}",
                "expression": "$.g.length",
            },
        },
        {
            "name": "jq",
            "taskReferenceName": "jq",
            "type": "JSON_JQ_TRANSFORM",
            "inputParameters": {
                "g": "${workflow.secrets.greeting}",
                "queryExpression": ".g | length",
            },
        },
    ]
    workflow_id = await run(client, tasks)
    await drain(api_app)
    body = await wf(client, workflow_id)
    assert body["status"] == "COMPLETED", body.get("reasonForIncompletion")
    assert [t["outputData"]["result"] for t in body["tasks"]] == [12, 12]


# -- masking ----------------------------------------------------------------------------


async def test_secrets_and_masked_subtrees_read_as_three_stars(client: httpx.AsyncClient) -> None:
    params = {"_secrets": {"pw": "${workflow.input.pw}"}, "_masked": "${workflow.input.pw}", "u": 1}
    workflow_id = await run(client, [simple("a", inputParameters=params)], {"pw": "pw-value-77"})
    task = await poll(client, "w_a")
    assert task["inputData"]["_secrets"] == {"pw": "pw-value-77"}  # workers need the value
    shown = await wf(client, workflow_id)
    assert shown["tasks"][0]["inputData"] == {"_secrets": "***", "_masked": "***", "u": 1}
    # The value is masked where it came from too.
    assert shown["input"] == {"pw": "***"}


async def test_a_secret_value_echoed_by_a_task_is_masked_on_every_read(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    await put_secret(client, "echo_me", "echo-value-42")
    tasks = [
        {
            "name": "js",
            "taskReferenceName": "js",
            "type": "INLINE",
            "inputParameters": {
                "evaluatorType": "javascript",
                "g": "${workflow.secrets.echo_me}",
                "expression": "'got ' + $.g",
            },
        }
    ]
    workflow_id = await run(client, tasks, outputParameters={"echo": "${js.output.result}"})
    await drain(api_app)
    shown = await client.get(f"/api/workflow/{workflow_id}")
    assert "echo-value-42" not in shown.text
    assert shown.json()["output"] == {"echo": "got ***"}
    task_id = shown.json()["tasks"][0]["taskId"]
    assert "echo-value-42" not in (await client.get(f"/api/tasks/{task_id}")).text
    search = await client.get("/api/workflow/search", params={"query": ""})
    assert search.status_code == 200 and "echo-value-42" not in search.text


async def test_masked_fields_of_the_definition_hide_workflow_input(
    client: httpx.AsyncClient,
) -> None:
    workflow_id = await run(
        client, [simple("a")], {"password": "p4ssw0rd!", "user": "u"}, maskedFields=["password"]
    )
    shown = await wf(client, workflow_id)
    assert shown["input"] == {"password": "***", "user": "u"}


async def test_task_logs_mask_secret_values(client: httpx.AsyncClient) -> None:
    await put_secret(client, "logged", "logged-value-9")
    await run(client, [simple("a", inputParameters={"k": "${workflow.secrets.logged}"})])
    task = await poll(client, "w_a")
    r = await client.post(f"/api/tasks/{task['taskId']}/log", content="using logged-value-9 now")
    assert r.status_code == 200
    logs = await client.get(f"/api/tasks/{task['taskId']}/log")
    assert [entry["log"] for entry in logs.json()] == ["using *** now"]


# -- outputFilter -----------------------------------------------------------------------


FILTER = {"_secrets": {"token": "$${a.output.body.token}"}}


async def test_output_filter_replaces_the_output_and_later_tasks_read_the_kept_value(
    client: httpx.AsyncClient,
) -> None:
    first = simple("a", inputParameters={"outputFilter": FILTER})
    second = simple("b", inputParameters={"t": "${a.output._secrets.token}"})
    workflow_id = await run(client, [first, second])
    task = await poll(client, "w_a")
    # `$${` survived input resolution as a literal `${`.
    assert task["inputData"]["outputFilter"] == {"_secrets": {"token": "${a.output.body.token}"}}
    await complete(client, task, {"body": {"token": "tok-fresh-1", "other": 1}})
    assert (await poll(client, "w_b"))["inputData"]["t"] == "tok-fresh-1"
    shown = await wf(client, workflow_id)
    assert shown["tasks"][0]["outputData"] == {"_secrets": "***"}
    assert "tok-fresh-1" not in str(shown)


async def test_output_filters_alias_works_the_same(client: httpx.AsyncClient) -> None:
    first = simple("a", inputParameters={"_outputFilters": {"kept": "$${a.output.x}"}})
    workflow_id = await run(client, [first])
    await complete(client, await poll(client, "w_a"), {"x": 1, "dropped": 2})
    assert (await wf(client, workflow_id))["tasks"][0]["outputData"] == {"kept": 1}


async def test_a_failed_task_does_not_keep_its_unfiltered_output(
    client: httpx.AsyncClient,
) -> None:
    first = simple("a", inputParameters={"outputFilter": FILTER})
    workflow_id = await run(client, [first])
    task = await poll(client, "w_a")
    await complete(
        client, task, {"body": {"token": "tok-x-123"}, "raw": "r"}, "FAILED_WITH_TERMINAL_ERROR"
    )
    stored = (await wf(client, workflow_id))["tasks"][0]
    assert stored["outputData"] == {"_secrets": "***"}


# -- UPDATE_SECRET ----------------------------------------------------------------------


def update_secret(key: Any, value: Any) -> dict[str, Any]:
    block: dict[str, Any] = {}
    if key is not None:
        block["secretKey"] = key
    if value is not None:
        block["secretValue"] = value
    return {
        "name": "update",
        "taskReferenceName": "update",
        "type": "UPDATE_SECRET",
        "inputParameters": {"_secrets": block},
    }


async def test_update_secret_stores_the_value_and_the_next_task_reads_it(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    reader = simple("b", inputParameters={"v": "${workflow.secrets.fresh}"})
    workflow_id = await run(
        client, [update_secret("fresh", "${workflow.input.v}"), reader], {"v": "new-value-5"}
    )
    await drain(api_app)
    assert (await poll(client, "w_b"))["inputData"]["v"] == "new-value-5"
    shown = await wf(client, workflow_id)
    assert shown["tasks"][0]["status"] == "COMPLETED"
    assert shown["tasks"][0]["outputData"] == {}
    assert shown["tasks"][0]["inputData"] == {"_secrets": "***"}
    assert (await client.get("/api/secrets/fresh")).text == "new-value-5"


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (None, "v-123456", "secretKey is missing or empty"),
        ("", "v-123456", "secretKey is missing or empty"),
        ("k", None, "secretValue is missing or empty"),
        ("k", "", "secretValue is missing or empty"),
    ],
)
async def test_update_secret_with_a_missing_field_fails_terminally(
    client: httpx.AsyncClient, api_app: FastAPI, key: Any, value: Any, reason: str
) -> None:
    workflow_id = await run(client, [update_secret(key, value)])
    await drain(api_app)
    task = (await wf(client, workflow_id))["tasks"][0]
    assert task["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert reason in task["reasonForIncompletion"]


async def test_update_secret_without_write_permission_fails_without_showing_the_value(
    client: httpx.AsyncClient, anon_client: httpx.AsyncClient, token_for: TokenFor, api_app: FastAPI
) -> None:
    definition = {
        "name": "writes_secret",
        "version": 1,
        "tasks": [update_secret("target", "${workflow.input.v}")],
    }
    assert (await client.post("/api/metadata/workflow", json=definition)).status_code == 200
    manager = await token_for(Role.WORKFLOW_MANAGER)
    r = await anon_client.post(
        "/api/workflow/writes_secret",
        json={"v": "never-shown-7"},
        headers=with_token(anon_client, manager),
    )
    await drain(api_app)
    task = (await wf(client, r.text))["tasks"][0]
    assert task["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert "never-shown-7" not in task["reasonForIncompletion"]
    assert (await client.get("/api/secrets/target/exists")).json() is False
    audit = (await client.get("/api/secrets/target/audit")).json()
    assert [(e["action"], e["workflowId"]) for e in audit] == [("ROTATION_FAILED", r.text)]
    assert "never-shown-7" not in str(audit)


async def test_update_secret_is_an_accepted_task_type(client: httpx.AsyncClient) -> None:
    definition = {"name": "only_update", "version": 1, "tasks": [update_secret("a", "b")]}
    assert (await client.post("/api/metadata/workflow", json=definition)).status_code == 200


async def test_error_bodies_do_not_echo_a_secret_value(client: httpx.AsyncClient) -> None:
    await put_secret(client, "named", "workflow-name-secret")
    # The app learns new values right after the write, asynchronously: allow it a moment.
    for _ in range(50):
        r = await client.post("/api/workflow", json={"name": "workflow-name-secret"})
        assert r.status_code == 404
        if "workflow-name-secret" not in r.text:
            break
        await asyncio.sleep(0.01)
    assert r.json()["message"] == "No such workflow defined. name=***, version=null"


async def test_a_part_of_a_json_secret_echoed_by_a_task_is_masked(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    await put_secret(client, "creds", '{"user": "svc", "password": "pa55word-xyz"}')
    tasks = [
        {
            "name": "js",
            "taskReferenceName": "js",
            "type": "INLINE",
            "inputParameters": {
                "evaluatorType": "javascript",
                "p": "${workflow.secrets.creds.password}",
                "expression": "'pw=' + $.p",
            },
        }
    ]
    workflow_id = await run(client, tasks)
    await drain(api_app)
    shown = await client.get(f"/api/workflow/{workflow_id}")
    assert shown.json()["tasks"][0]["outputData"]["result"] == "pw=***"
    assert "pa55word-xyz" not in shown.text


async def test_a_signal_sync_answer_is_masked_like_any_read(client: httpx.AsyncClient) -> None:
    tasks = [
        simple("a"),
        {"name": "h1", "taskReferenceName": "h1", "type": "WAIT"},
        {"name": "h2", "taskReferenceName": "h2", "type": "WAIT"},
    ]
    workflow_id = await run(client, tasks)
    await complete(client, await poll(client, "w_a"), {"_secrets": {"token": "signal-tok-1"}})
    r = await client.post(
        f"/api/tasks/{workflow_id}/COMPLETED/signal/sync",
        params={"returnStrategy": "TARGET_WORKFLOW"},
        json={"ok": True},
    )
    assert r.status_code == 200, r.text
    assert "signal-tok-1" not in r.text
    assert r.json()["tasks"][0]["outputData"] == {"_secrets": "***"}


async def test_a_rerun_runs_as_whoever_asked_for_it(
    client: httpx.AsyncClient, anon_client: httpx.AsyncClient, token_for: TokenFor
) -> None:
    """A rerun may bring new input: it must not run with the first starter's secret access."""
    await put_secret(client, "admins_only", "admins-only-value")
    step = simple("a", inputParameters={"k": "${workflow.secrets.admins_only}"})
    workflow_id = await run(client, [step])
    await work(client, "w_a")  # the admin's run reads it
    manager = await token_for(Role.WORKFLOW_MANAGER)
    r = await anon_client.post(
        f"/api/workflow/{workflow_id}/rerun",
        json={"workflowInput": {"x": 1}},
        headers=with_token(anon_client, manager),
    )
    assert r.status_code == 200, r.text
    assert (await client.get("/api/tasks/poll/w_a")).status_code == 204
    task = (await wf(client, workflow_id))["tasks"][0]
    assert task["reasonForIncompletion"] == "Secret 'admins_only' not found or not accessible"
