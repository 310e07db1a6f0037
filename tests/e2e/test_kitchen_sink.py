"""One workflow using HTTP, INLINE, SWITCH, FORK/JOIN, DO_WHILE, SET_VARIABLE, SUB_WORKFLOW,
JSON_JQ_TRANSFORM, WAIT and TERMINATE together, on a real server process."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import ServerProcess
from tests.e2e.stub_http import stub_server
from tests.e2e.support import admin_client, wait_for_statuses


def kitchen_sink(stub: str) -> dict[str, Any]:
    return {
        "name": "kitchen_sink",
        "version": 1,
        "tasks": [
            {
                "name": "fetch",
                "taskReferenceName": "fetch",
                "type": "HTTP",
                "inputParameters": {
                    "uri": f"{stub}/items",
                    "method": "POST",
                    "body": {"n": "${workflow.input.n}"},
                },
            },
            {
                "name": "double",
                "taskReferenceName": "double",
                "type": "INLINE",
                "inputParameters": {
                    "evaluatorType": "javascript",
                    "n": "${fetch.output.response.body.echo.n}",
                    "expression": "$.n * 2",
                },
            },
            {
                "name": "size",
                "taskReferenceName": "size",
                "type": "SWITCH",
                "evaluatorType": "value-param",
                "expression": "big",
                "inputParameters": {"big": "${double.output.result}"},
                "decisionCases": {
                    "6": [
                        {
                            "name": "mark",
                            "taskReferenceName": "mark",
                            "type": "SET_VARIABLE",
                            "inputParameters": {"path": "six"},
                        }
                    ]
                },
                "defaultCase": [
                    {
                        "name": "mark_other",
                        "taskReferenceName": "mark_other",
                        "type": "SET_VARIABLE",
                        "inputParameters": {"path": "other"},
                    }
                ],
            },
            {
                "name": "fork",
                "taskReferenceName": "fork",
                "type": "FORK_JOIN",
                "forkTasks": [
                    [
                        {
                            "name": "loop",
                            "taskReferenceName": "loop",
                            "type": "DO_WHILE",
                            "loopCondition": "$.loop['iteration'] < 3",
                            "loopOver": [
                                {
                                    "name": "tick",
                                    "taskReferenceName": "tick",
                                    "type": "INLINE",
                                    "inputParameters": {
                                        "evaluatorType": "javascript",
                                        "expression": "'tick'",
                                    },
                                }
                            ],
                        }
                    ],
                    [
                        {
                            "name": "child",
                            "taskReferenceName": "child",
                            "type": "SUB_WORKFLOW",
                            "subWorkflowParam": {"name": "kitchen_child", "version": 1},
                            "inputParameters": {"v": "${double.output.result}"},
                        }
                    ],
                    [
                        {
                            "name": "nap",
                            "taskReferenceName": "nap",
                            "type": "WAIT",
                            "inputParameters": {"duration": "1s"},
                        }
                    ],
                ],
            },
            {
                "name": "join",
                "taskReferenceName": "join",
                "type": "JOIN",
                "joinOn": ["loop", "child", "nap"],
            },
            {
                "name": "shape",
                "taskReferenceName": "shape",
                "type": "JSON_JQ_TRANSFORM",
                "inputParameters": {
                    "child": "${child.output.plusOne}",
                    "loops": "${loop.output.iteration}",
                    "queryExpression": "{sum: (.child + .loops)}",
                },
            },
            {
                "name": "end",
                "taskReferenceName": "end",
                "type": "TERMINATE",
                "inputParameters": {
                    "terminationStatus": "COMPLETED",
                    "workflowOutput": {
                        "sum": "${shape.output.result.sum}",
                        "path": "${workflow.variables.path}",
                        "hits": "${fetch.output.response.body.hit}",
                    },
                },
            },
        ],
    }


CHILD = {
    "name": "kitchen_child",
    "version": 1,
    "tasks": [
        {
            "name": "inc",
            "taskReferenceName": "inc",
            "type": "INLINE",
            "inputParameters": {
                "evaluatorType": "javascript",
                "v": "${workflow.input.v}",
                "expression": "$.v + 1",
            },
        }
    ],
    "outputParameters": {"plusOne": "${inc.output.result}"},
}


@pytest.mark.timeout(120)
async def test_kitchen_sink_workflow_ends_with_the_expected_output(server: ServerProcess) -> None:
    with stub_server() as stub:
        async with admin_client(server.url) as c:
            r = await c.put("/api/metadata/workflow", json=[CHILD, kitchen_sink(stub.url)])
            assert r.status_code == 200, r.text
            r = await c.post("/api/workflow/kitchen_sink", json={"n": 3})
            assert r.status_code == 200, r.text
            workflow_id = r.text
            statuses = await wait_for_statuses(
                c, [workflow_id], 60, frozenset({"COMPLETED", "FAILED", "TERMINATED"})
            )
            body = (await c.get(f"/api/workflow/{workflow_id}")).json()
            assert statuses[workflow_id] == "COMPLETED", body.get("reasonForIncompletion")
            # 3 doubled is 6: the "6" case ran; the child added 1 to 6; the loop ran 3 times.
            assert body["output"] == {"sum": 10, "path": "six", "hits": 1}
            assert stub.hits == [{"method": "POST", "path": "/items", "body": {"n": 3}}]
