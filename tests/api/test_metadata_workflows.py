"""/api/metadata/workflow behaves as Conductor's MetadataResource."""

from __future__ import annotations

from typing import Any

import httpx

from app.clock import ManualClock

BASE = "/api/metadata/workflow"


def wf(name: str = "greet", version: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "version": version,
        "tasks": [{"name": "say_hi", "taskReferenceName": "say_hi_ref", "type": "SIMPLE"}],
        **extra,
    }


async def test_created_workflow_def_gets_conductors_defaults(client: httpx.AsyncClient) -> None:
    assert (await client.post(BASE, json=wf())).status_code == 200
    body = (await client.get(f"{BASE}/greet")).json()
    assert body["schemaVersion"] == 2
    assert body["timeoutPolicy"] == "ALERT_ONLY"
    assert body["timeoutSeconds"] == 0
    assert body["restartable"] is True
    assert body["outputParameters"] == {}
    assert body["tasks"][0]["type"] == "SIMPLE"
    assert body["tasks"][0]["optional"] is False


async def test_version_defaults_to_1(client: httpx.AsyncClient) -> None:
    definition = wf()
    del definition["version"]
    await client.post(BASE, json=definition)
    assert (await client.get(f"{BASE}/greet", params={"version": 1})).json()["version"] == 1


async def test_creating_an_existing_version_is_409(client: httpx.AsyncClient) -> None:
    await client.post(BASE, json=wf())
    response = await client.post(BASE, json=wf())
    assert response.status_code == 409
    assert response.json()["message"] == "Workflow with greet.1 already exists!"


async def test_overwrite_replaces_an_existing_version(client: httpx.AsyncClient) -> None:
    await client.post(BASE, json=wf())
    response = await client.post(BASE, params={"overwrite": "true"}, json=wf(description="new"))
    assert response.status_code == 200
    assert (await client.get(f"{BASE}/greet")).json()["description"] == "new"


async def test_get_without_version_returns_the_latest(client: httpx.AsyncClient) -> None:
    await client.post(BASE, json=wf(version=1))
    await client.post(BASE, json=wf(version=3))
    await client.post(BASE, json=wf(version=2))
    assert (await client.get(f"{BASE}/greet")).json()["version"] == 3


async def test_get_of_a_specific_version(client: httpx.AsyncClient) -> None:
    await client.post(BASE, json=wf(version=1))
    await client.post(BASE, json=wf(version=2))
    assert (await client.get(f"{BASE}/greet", params={"version": 1})).json()["version"] == 1


async def test_unknown_workflow_is_404_with_conductors_message(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{BASE}/nope")
    assert response.status_code == 404
    assert response.json()["message"] == "No such workflow found by name: nope, version: null"


async def test_unknown_version_is_404_naming_it(client: httpx.AsyncClient) -> None:
    await client.post(BASE, json=wf())
    response = await client.get(f"{BASE}/greet", params={"version": 9})
    assert response.json()["message"] == "No such workflow found by name: greet, version: 9"


async def test_put_upserts_a_list_and_reports_a_bulk_response(client: httpx.AsyncClient) -> None:
    await client.post(BASE, json=wf("a"))
    response = await client.put(BASE, json=[wf("a", description="changed"), wf("b")])
    assert response.status_code == 200
    assert response.json() == {
        "bulkErrorResults": {},
        "bulkSuccessfulResults": ["a", "b"],
        "message": "Bulk Request has been processed.",
    }
    assert (await client.get(f"{BASE}/a")).json()["description"] == "changed"


async def test_put_keeps_create_time_and_sets_update_time(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await client.post(BASE, json=wf())
    created = clock.now_ms()
    clock.advance(1_000)
    await client.put(BASE, json=[wf()])
    body = (await client.get(f"{BASE}/greet")).json()
    assert (body["createTime"], body["updateTime"]) == (created, created + 1_000)


async def test_put_with_one_invalid_def_is_400_and_writes_nothing(
    client: httpx.AsyncClient,
) -> None:
    response = await client.put(BASE, json=[wf("a"), {"name": "b", "tasks": []}])
    assert response.status_code == 400
    assert (await client.get(BASE)).json() == []


async def test_list_returns_every_version(client: httpx.AsyncClient) -> None:
    await client.post(BASE, json=wf("a", 1))
    await client.post(BASE, json=wf("a", 2))
    await client.post(BASE, json=wf("b", 1))
    listed = [(d["name"], d["version"]) for d in (await client.get(BASE)).json()]
    assert listed == [("a", 1), ("a", 2), ("b", 1)]


async def test_latest_versions_returns_one_def_per_name(client: httpx.AsyncClient) -> None:
    await client.post(BASE, json=wf("a", 1))
    await client.post(BASE, json=wf("a", 2))
    await client.post(BASE, json=wf("b", 1))
    latest = [
        (d["name"], d["version"]) for d in (await client.get(f"{BASE}/latest-versions")).json()
    ]
    assert latest == [("a", 2), ("b", 1)]


async def test_names_and_versions_groups_summaries_by_name(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await client.post(BASE, json=wf("a", 1))
    await client.post(BASE, json=wf("a", 2))
    body = (await client.get(f"{BASE}/names-and-versions")).json()
    assert body == {
        "a": [
            {"name": "a", "version": 1, "createTime": clock.now_ms()},
            {"name": "a", "version": 2, "createTime": clock.now_ms()},
        ]
    }


async def test_delete_removes_one_version_and_latest_follows(client: httpx.AsyncClient) -> None:
    await client.post(BASE, json=wf(version=1))
    await client.post(BASE, json=wf(version=2))
    assert (await client.delete(f"{BASE}/greet/2")).status_code == 200
    assert (await client.get(f"{BASE}/greet")).json()["version"] == 1


async def test_delete_of_unknown_version_is_404_not_500(client: httpx.AsyncClient) -> None:
    assert (await client.delete(f"{BASE}/greet/1")).status_code == 404


async def test_validate_accepts_a_valid_def_without_storing_it(client: httpx.AsyncClient) -> None:
    assert (await client.post(f"{BASE}/validate", json=wf())).status_code == 200
    assert (await client.get(f"{BASE}/greet")).status_code == 404


async def test_empty_workflow_def_is_400_with_conductors_messages(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(BASE, json={})
    assert response.status_code == 400
    messages = [e["message"] for e in response.json()["validationErrors"]]
    assert "WorkflowDef name cannot be null or empty" in messages
    assert "WorkflowTask list cannot be empty" in messages


async def test_duplicate_reference_names_in_a_fork_are_400(client: httpx.AsyncClient) -> None:
    definition = wf(
        tasks=[
            {
                "name": "fork",
                "taskReferenceName": "fork",
                "type": "FORK_JOIN",
                "forkTasks": [
                    [{"name": "a", "taskReferenceName": "dup"}],
                    [{"name": "b", "taskReferenceName": "dup"}],
                ],
            },
            {"name": "join", "taskReferenceName": "join", "type": "JOIN", "joinOn": ["dup"]},
        ]
    )
    response = await client.post(BASE, json=definition)
    assert response.status_code == 400
    messages = [e["message"] for e in response.json()["validationErrors"]]
    assert any("taskReferenceName: dup should be unique" in m for m in messages)


async def test_unknown_task_type_is_400(client: httpx.AsyncClient) -> None:
    definition = wf(tasks=[{"name": "k", "taskReferenceName": "k", "type": "KAFKA_PUBLISH"}])
    assert (await client.post(BASE, json=definition)).status_code == 400


async def test_schema_version_other_than_2_is_400(client: httpx.AsyncClient) -> None:
    assert (await client.post(BASE, json=wf(schemaVersion=1))).status_code == 400


async def test_unknown_timeout_policy_is_400(client: httpx.AsyncClient) -> None:
    assert (await client.post(BASE, json=wf(timeoutPolicy="RETRY"))).status_code == 400


async def test_nested_tasks_round_trip_unchanged(client: httpx.AsyncClient) -> None:
    switch = {
        "name": "route",
        "taskReferenceName": "route",
        "type": "SWITCH",
        "evaluatorType": "value-param",
        "expression": "kind",
        "inputParameters": {"kind": "${workflow.input.kind}", "keep": None},
        "decisionCases": {"a": [{"name": "x", "taskReferenceName": "x"}]},
        "defaultCase": [{"name": "y", "taskReferenceName": "y"}],
    }
    await client.post(BASE, json=wf(tasks=[switch]))
    stored = (await client.get(f"{BASE}/greet")).json()["tasks"][0]
    assert stored["decisionCases"]["a"][0]["taskReferenceName"] == "x"
    assert stored["inputParameters"] == {"kind": "${workflow.input.kind}", "keep": None}
