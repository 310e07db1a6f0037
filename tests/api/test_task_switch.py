"""SWITCH and the legacy DECISION through the API: picking a case by value or script, the
default case, and going on after the branch."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.flows import refs, run, simple, wf, work


async def test_switch_value_param_runs_the_matching_case(client: httpx.AsyncClient) -> None:
    switch = {
        "name": "route",
        "taskReferenceName": "route",
        "type": "SWITCH",
        "evaluatorType": "value-param",
        "expression": "kind",
        "inputParameters": {"kind": "${workflow.input.kind}"},
        "decisionCases": {"a": [simple("in_a")], "b": [simple("in_b")]},
        "defaultCase": [simple("in_default")],
    }
    workflow_id = await run(client, [switch, simple("after")], {"kind": "b"})
    body = await wf(client, workflow_id)
    assert refs(body) == ["route", "in_b"]
    assert body["tasks"][0]["outputData"] == {"evaluationResult": ["b"], "selectedCase": "b"}
    await work(client, "w_in_b")
    assert refs(await wf(client, workflow_id)) == ["route", "in_b", "after"]


async def test_switch_without_a_matching_case_runs_the_default(client: httpx.AsyncClient) -> None:
    switch = {
        "name": "route",
        "taskReferenceName": "route",
        "type": "SWITCH",
        "evaluatorType": "value-param",
        "expression": "kind",
        "inputParameters": {"kind": "${workflow.input.kind}"},
        "decisionCases": {"a": [simple("in_a")]},
        "defaultCase": [simple("in_default")],
    }
    workflow_id = await run(client, [switch], {"kind": "zzz"})
    assert refs(await wf(client, workflow_id)) == ["route", "in_default"]


async def test_switch_with_an_empty_matched_case_goes_straight_on(
    client: httpx.AsyncClient,
) -> None:
    switch = {
        "name": "route",
        "taskReferenceName": "route",
        "type": "SWITCH",
        "evaluatorType": "value-param",
        "expression": "kind",
        "inputParameters": {"kind": "x"},
        "decisionCases": {"x": []},
        "defaultCase": [simple("in_default")],
    }
    workflow_id = await run(client, [switch, simple("after")])
    assert refs(await wf(client, workflow_id)) == ["route", "after"]


async def test_switch_javascript_expression_picks_the_case(client: httpx.AsyncClient) -> None:
    switch = {
        "name": "route",
        "taskReferenceName": "route",
        "type": "SWITCH",
        "evaluatorType": "javascript",
        "expression": "$.n > 5 ? 'big' : 'small'",
        "inputParameters": {"n": "${workflow.input.n}"},
        "decisionCases": {"big": [simple("big")], "small": [simple("small")]},
    }
    workflow_id = await run(client, [switch], {"n": 9})
    assert refs(await wf(client, workflow_id)) == ["route", "big"]


async def test_decision_uses_the_default_for_an_empty_case(client: httpx.AsyncClient) -> None:
    decision = {
        "name": "d",
        "taskReferenceName": "d",
        "type": "DECISION",
        "caseValueParam": "c",
        "inputParameters": {"c": "x"},
        "decisionCases": {"x": []},
        "defaultCase": [simple("dflt")],
    }
    workflow_id = await run(client, [decision])
    body = await wf(client, workflow_id)
    assert refs(body) == ["d", "dflt"]
    assert body["tasks"][0]["outputData"] == {"caseOutput": ["x"]}


def switch_on(value: str, cases: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A value-param SWITCH on the input key `v` = `value`."""
    return {
        "name": "route",
        "taskReferenceName": "route",
        "type": "SWITCH",
        "evaluatorType": "value-param",
        "expression": "v",
        "inputParameters": {"v": value},
        "decisionCases": cases,
        **extra,
    }


async def test_switch_case_is_the_value_as_text(client: httpx.AsyncClient) -> None:
    switch = switch_on("${workflow.input.n}", {"2": [simple("two")], "true": [simple("yes")]})
    body = await wf(client, await run(client, [switch], {"n": 2}))
    assert refs(body) == ["route", "two"]
    assert body["tasks"][0]["outputData"] == {"evaluationResult": ["2"], "selectedCase": "2"}
    assert body["tasks"][0]["inputData"]["case"] == "2"
    body = await wf(client, await run(client, [switch], {"n": True}))
    assert refs(body) == ["route", "yes"]


async def test_switch_on_a_missing_value_takes_the_null_case(client: httpx.AsyncClient) -> None:
    switch = switch_on("${workflow.input.absent}", {"null": [simple("nothing")]})
    body = await wf(client, await run(client, [switch]))
    assert refs(body) == ["route", "nothing"]
    assert body["tasks"][0]["outputData"]["selectedCase"] == "null"


async def test_switch_without_a_match_or_default_goes_on_after_it(
    client: httpx.AsyncClient,
) -> None:
    switch = switch_on("zzz", {"a": [simple("in_a")]})
    workflow_id = await run(client, [switch, simple("after")])
    assert refs(await wf(client, workflow_id)) == ["route", "after"]


async def test_switch_goes_on_after_the_last_task_of_the_branch(
    client: httpx.AsyncClient,
) -> None:
    switch = switch_on("a", {"a": [simple("a1"), simple("a2")]}, defaultCase=[simple("d")])
    workflow_id = await run(client, [switch, simple("after")])
    await work(client, "w_a1")
    assert refs(await wf(client, workflow_id)) == ["route", "a1", "a2"]
    await work(client, "w_a2")
    await work(client, "w_after")
    body = await wf(client, workflow_id)
    assert (body["status"], refs(body)) == ("COMPLETED", ["route", "a1", "a2", "after"])


async def test_a_switch_script_error_fails_the_switch_and_the_workflow(
    client: httpx.AsyncClient,
) -> None:
    switch = {
        "name": "route",
        "taskReferenceName": "route",
        "type": "SWITCH",
        "evaluatorType": "javascript",
        "expression": "$.missing.deeper",
        "inputParameters": {},
        "decisionCases": {"x": [simple("x")]},
    }
    body = await wf(client, await run(client, [switch, simple("after")]))
    assert body["status"] == "FAILED"
    assert refs(body) == ["route"]
    assert body["tasks"][0]["status"] in ("FAILED", "FAILED_WITH_TERMINAL_ERROR")
    assert body["tasks"][0]["reasonForIncompletion"]


async def test_decision_case_expression_is_javascript(client: httpx.AsyncClient) -> None:
    decision = {
        "name": "d",
        "taskReferenceName": "d",
        "type": "DECISION",
        "caseExpression": "$.n > 1 ? 'many' : 'one'",
        "inputParameters": {"n": "${workflow.input.n}"},
        "decisionCases": {"many": [simple("many")], "one": [simple("one")]},
    }
    body = await wf(client, await run(client, [decision], {"n": 3}))
    assert refs(body) == ["d", "many"]
    assert body["tasks"][0]["outputData"] == {"caseOutput": ["many"]}


async def test_decision_uses_the_default_for_an_unmatched_case(client: httpx.AsyncClient) -> None:
    decision = {
        "name": "d",
        "taskReferenceName": "d",
        "type": "DECISION",
        "caseValueParam": "c",
        "inputParameters": {"c": "other"},
        "decisionCases": {"x": [simple("x")]},
        "defaultCase": [simple("dflt")],
    }
    body = await wf(client, await run(client, [decision]))
    assert refs(body) == ["d", "dflt"]


async def test_a_decision_script_error_fails_the_workflow(client: httpx.AsyncClient) -> None:
    decision = {
        "name": "d",
        "taskReferenceName": "d",
        "type": "DECISION",
        "caseExpression": "$.missing.deeper",
        "inputParameters": {},
        "decisionCases": {"x": [simple("x")]},
    }
    body = await wf(client, await run(client, [decision]))
    assert body["status"] == "FAILED"
    assert refs(body) == ["d"]
