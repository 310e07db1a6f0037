"""INLINE through the API: the script's result as output, script errors as terminal
failures."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from tests.api.flows import drain, run, task_defs, wf


def inline(expression: str) -> dict[str, Any]:
    return {
        "name": "calc",
        "taskReferenceName": "calc",
        "type": "INLINE",
        "inputParameters": {
            "evaluatorType": "javascript",
            "expression": expression,
            "a": "${workflow.input.a}",
            "b": "${workflow.input.b}",
        },
    }


async def test_inline_task_computes_its_result(client: httpx.AsyncClient, api_app: FastAPI) -> None:
    workflow_id = await run(client, [inline("$.a + $.b")], {"a": 2, "b": 3})
    await drain(api_app)
    body = await wf(client, workflow_id)
    assert body["status"] == "COMPLETED"
    assert body["tasks"][0]["outputData"] == {"result": 5}


async def test_inline_script_error_fails_terminally(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    workflow_id = await run(client, [inline("$.a.no.such.thing")], {"a": 2, "b": 3})
    await drain(api_app)
    body = await wf(client, workflow_id)
    task = body["tasks"][0]
    assert task["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert task["reasonForIncompletion"]
    assert "error" in task["outputData"]
    assert body["status"] == "FAILED"


async def test_value_param_returns_the_input_named_by_the_expression(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    task = inline("b")
    task["inputParameters"]["evaluatorType"] = "value-param"
    workflow_id = await run(client, [task], {"a": 2, "b": {"deep": [1]}})
    await drain(api_app)
    assert (await wf(client, workflow_id))["tasks"][0]["outputData"] == {"result": {"deep": [1]}}


async def test_without_an_evaluator_type_the_expression_is_javascript(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    task = inline("(function () { return $.a * $.b; })()")
    del task["inputParameters"]["evaluatorType"]
    workflow_id = await run(client, [task], {"a": 4, "b": 5})
    await drain(api_app)
    assert (await wf(client, workflow_id))["tasks"][0]["outputData"] == {"result": 20}


async def test_an_unknown_evaluator_fails_terminally(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    task = inline("1")
    task["inputParameters"]["evaluatorType"] = "${workflow.input.ev}"
    workflow_id = await run(client, [task], {"ev": "cobol"})
    await drain(api_app)
    body = await wf(client, workflow_id)
    failed = body["tasks"][0]
    assert failed["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert failed["reasonForIncompletion"] == "Unknown evaluator 'cobol' in INLINE task."
    assert failed["outputData"] == {"error": failed["reasonForIncompletion"]}
    assert body["status"] == "FAILED"


async def test_a_script_error_is_not_retried_even_with_retries_configured(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    await task_defs(client, {"name": "calc", "retryCount": 2, "retryDelaySeconds": 0})
    workflow_id = await run(client, [inline("throw new Error('boom')")], {"a": 1, "b": 1})
    await drain(api_app)
    body = await wf(client, workflow_id)
    assert [t["status"] for t in body["tasks"]] == ["FAILED_WITH_TERMINAL_ERROR"]
    assert "boom" in body["tasks"][0]["reasonForIncompletion"]
    assert body["status"] == "FAILED"
