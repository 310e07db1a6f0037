"""/api/metadata/taskdefs behaves as Conductor's MetadataResource."""

from __future__ import annotations

import httpx

from app.clock import ManualClock

BASE = "/api/metadata/taskdefs"


async def _register(client: httpx.AsyncClient, *defs: dict[str, object]) -> httpx.Response:
    return await client.post(BASE, json=list(defs))


async def test_registered_task_def_gets_conductors_defaults(client: httpx.AsyncClient) -> None:
    assert (await _register(client, {"name": "encode"})).status_code == 200
    body = (await client.get(f"{BASE}/encode")).json()
    assert body["retryCount"] == 3
    assert body["retryLogic"] == "FIXED"
    assert body["retryDelaySeconds"] == 60
    assert body["responseTimeoutSeconds"] == 3600
    assert body["timeoutSeconds"] == 0
    assert body["timeoutPolicy"] == "TIME_OUT_WF"
    assert body["rateLimitFrequencyInSeconds"] == 1
    assert body["inputKeys"] == []


async def test_register_answers_200_with_an_empty_body(client: httpx.AsyncClient) -> None:
    response = await _register(client, {"name": "encode"})
    assert response.status_code == 200
    assert response.content == b""


async def test_register_sets_create_time_from_the_clock(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await _register(client, {"name": "encode"})
    assert (await client.get(f"{BASE}/encode")).json()["createTime"] == clock.now_ms()


async def test_null_properties_are_omitted_from_responses(client: httpx.AsyncClient) -> None:
    await _register(client, {"name": "encode"})
    body = (await client.get(f"{BASE}/encode")).json()
    assert "description" not in body
    assert "updateTime" not in body


async def test_registering_an_existing_name_replaces_it(client: httpx.AsyncClient) -> None:
    await _register(client, {"name": "encode", "retryCount": 1})
    assert (await _register(client, {"name": "encode", "retryCount": 5})).status_code == 200
    assert (await client.get(f"{BASE}/encode")).json()["retryCount"] == 5


async def test_list_returns_every_task_def(client: httpx.AsyncClient) -> None:
    await _register(client, {"name": "a"}, {"name": "b"})
    names = [d["name"] for d in (await client.get(BASE)).json()]
    assert names == ["a", "b"]


async def test_unknown_task_def_is_404_with_conductors_message(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{BASE}/test")
    assert response.status_code == 404
    body = response.json()
    assert body["message"] == "No such taskType found by name: test"
    assert body["status"] == 404
    assert body["retryable"] is False
    assert body["instance"] == "test-instance"


async def test_update_changes_an_existing_def_and_keeps_create_time(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await _register(client, {"name": "encode"})
    created = clock.now_ms()
    clock.advance(5_000)
    response = await client.put(BASE, json={"name": "encode", "retryCount": 7})
    assert response.status_code == 200
    body = (await client.get(f"{BASE}/encode")).json()
    assert (body["retryCount"], body["createTime"], body["updateTime"]) == (
        7,
        created,
        created + 5_000,
    )


async def test_update_of_unknown_def_is_404(client: httpx.AsyncClient) -> None:
    response = await client.put(BASE, json={"name": "ghost"})
    assert response.status_code == 404
    assert response.json()["message"] == "No such task by name ghost"


async def test_delete_removes_the_def(client: httpx.AsyncClient) -> None:
    await _register(client, {"name": "encode"})
    assert (await client.delete(f"{BASE}/encode")).status_code == 200
    assert (await client.get(f"{BASE}/encode")).status_code == 404


async def test_delete_of_unknown_def_is_404_not_500(client: httpx.AsyncClient) -> None:
    assert (await client.delete(f"{BASE}/ghost")).status_code == 404


async def test_empty_task_def_is_400_with_validation_errors(client: httpx.AsyncClient) -> None:
    response = await client.put(BASE, json={})
    assert response.status_code == 400
    body = response.json()
    assert body["message"] == "Validation failed, check below errors for detail."
    messages = [e["message"] for e in body["validationErrors"]]
    assert "TaskDef name cannot be null or empty" in messages
    assert "instance" not in body


async def test_response_timeout_above_timeout_is_rejected(client: httpx.AsyncClient) -> None:
    response = await _register(
        client, {"name": "slow", "timeoutSeconds": 10, "responseTimeoutSeconds": 20}
    )
    assert response.status_code == 400
    messages = [e["message"] for e in response.json()["validationErrors"]]
    assert (
        "TaskDef: slow responseTimeoutSeconds: 20 must be less than timeoutSeconds: 10" in messages
    )


async def test_one_invalid_def_in_a_list_writes_none_of_them(client: httpx.AsyncClient) -> None:
    response = await _register(client, {"name": "good"}, {"name": ""})
    assert response.status_code == 400
    assert (await client.get(BASE)).json() == []


async def test_empty_list_is_400(client: httpx.AsyncClient) -> None:
    assert (await client.post(BASE, json=[])).status_code == 400


async def test_unknown_retry_logic_is_400_not_500(client: httpx.AsyncClient) -> None:
    response = await _register(client, {"name": "x", "retryLogic": "SOMETIMES"})
    assert response.status_code == 400
    assert response.json()["validationErrors"][0]["path"].endswith("retryLogic")


async def test_wrong_type_is_400_not_500(client: httpx.AsyncClient) -> None:
    response = await _register(client, {"name": "x", "retryCount": "many"})
    assert response.status_code == 400


async def test_a_single_object_where_a_list_is_expected_is_400(client: httpx.AsyncClient) -> None:
    assert (await client.post(BASE, json={"name": "x"})).status_code == 400


async def test_unknown_properties_are_ignored(client: httpx.AsyncClient) -> None:
    assert (await _register(client, {"name": "x", "somethingNew": 1})).status_code == 200
    assert "somethingNew" not in (await client.get(f"{BASE}/x")).json()
