"""JSON_JQ_TRANSFORM through the API: result and resultList, and query errors."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.flows import run, wf


async def test_json_jq_transform_gives_result_and_result_list(client: httpx.AsyncClient) -> None:
    tasks = [
        {
            "name": "jq",
            "taskReferenceName": "jq",
            "type": "JSON_JQ_TRANSFORM",
            "inputParameters": {
                "items": "${workflow.input.items}",
                "queryExpression": ".items[] | .n * 2",
            },
        }
    ]
    body = await wf(client, await run(client, tasks, {"items": [{"n": 1}, {"n": 2}]}))
    assert body["status"] == "COMPLETED"
    assert body["tasks"][0]["outputData"] == {"result": 2, "resultList": [2, 4]}


def jq(query: str, **inputs: Any) -> list[dict[str, Any]]:
    return [
        {
            "name": "jq",
            "taskReferenceName": "jq",
            "type": "JSON_JQ_TRANSFORM",
            "inputParameters": {**inputs, "queryExpression": query},
        }
    ]


async def test_jq_combines_inputs_as_in_conductors_example(client: httpx.AsyncClient) -> None:
    tasks = jq(
        ".input as $_ | { out: ($_.in1.array + $_.in2.array) }",
        input={"in1": "${workflow.input.in1}", "in2": "${workflow.input.in2}"},
    )
    wf_input = {"in1": {"array": ["a", "b"]}, "in2": {"array": ["c", "d"]}}
    body = await wf(client, await run(client, tasks, wf_input))
    assert body["status"] == "COMPLETED"
    assert body["tasks"][0]["outputData"]["result"] == {"out": ["a", "b", "c", "d"]}


async def test_a_query_error_fails_the_task_and_the_workflow(client: httpx.AsyncClient) -> None:
    tasks = jq(".in1.array", in1="${workflow.input.in1}")
    body = await wf(client, await run(client, tasks, {"in1": "a"}))
    task = body["tasks"][0]
    assert task["status"] == "FAILED"
    assert task["reasonForIncompletion"] == 'Cannot index string with string "array"'
    assert task["outputData"]["error"] == task["reasonForIncompletion"]
    assert body["status"] == "FAILED"


async def test_the_query_sees_the_whole_task_input(client: httpx.AsyncClient) -> None:
    body = await wf(client, await run(client, jq("keys", a=1)))
    assert body["tasks"][0]["outputData"]["result"] == ["a", "queryExpression"]


async def test_a_query_without_results_gives_null_and_an_empty_list(
    client: httpx.AsyncClient,
) -> None:
    body = await wf(client, await run(client, jq(".items[]", items=[])))
    assert body["status"] == "COMPLETED"
    assert body["tasks"][0]["outputData"] == {"result": None, "resultList": []}
