"""SUB_WORKFLOW through the API: starting the child (by name/version or inline definition),
the child's end mapped onto the parent task, terminate going down to the child, and retry
(Conductor: a plain retry of the parent starts a new child; `resumeSubworkflowTasks` retries
the failed child itself; retrying a child revives the parents waiting on it)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from app.clock import ManualClock
from tests.api.flows import drain, refs, run, simple, task_of, wf, work

Json = dict[str, Any]


def sub(ref: str = "sub", name: str = "child", **params: Any) -> Json:
    return {
        "name": ref,
        "taskReferenceName": ref,
        "type": "SUB_WORKFLOW",
        "subWorkflowParam": {"name": name, **params},
    }


async def define(client: httpx.AsyncClient, definition: Json) -> None:
    r = await client.post("/api/metadata/workflow", params={"overwrite": "true"}, json=definition)
    assert r.status_code == 200, r.text


async def no_retries(client: httpx.AsyncClient, *names: str) -> None:
    defs = [{"name": n, "retryCount": 0} for n in names]
    assert (await client.post("/api/metadata/taskdefs", json=defs)).status_code == 200


async def retry(client: httpx.AsyncClient, workflow_id: str, resume: bool = False) -> None:
    params = {"resumeSubworkflowTasks": "true"} if resume else {}
    r = await client.post(f"/api/workflow/{workflow_id}/retry", params=params)
    assert r.status_code == 204, r.text


async def failed_parent(client: httpx.AsyncClient, api_app: FastAPI) -> tuple[str, str]:
    """A parent FAILED because its child failed on task `c`. Returns (parent, child)."""
    await no_retries(client, "w_c")
    await define(client, {"name": "child", "version": 1, "tasks": [simple("c")]})
    parent_id = await run(client, [sub(), simple("after")])
    child_id = (await wf(client, parent_id))["tasks"][0]["subWorkflowId"]
    await work(client, "w_c", status="FAILED")
    await drain(api_app)
    assert (await wf(client, parent_id))["status"] == "FAILED"
    return parent_id, child_id


# -- starting the child and following it ------------------------------------------------


async def test_sub_workflow_completes_the_parent_task_with_the_child_output(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    child = {
        "name": "child",
        "version": 1,
        "tasks": [simple("c")],
        "outputParameters": {"r": "${c.output.r}"},
    }
    assert (await client.post("/api/metadata/workflow", json=child)).status_code == 200
    tasks = [
        {
            "name": "sub",
            "taskReferenceName": "sub",
            "type": "SUB_WORKFLOW",
            "subWorkflowParam": {"name": "child", "version": 1},
            "inputParameters": {"x": 1},
        }
    ]
    workflow_id = await run(client, tasks)
    sub = (await wf(client, workflow_id))["tasks"][0]
    child_id = sub["subWorkflowId"]
    child_body = await wf(client, child_id)
    assert (child_body["parentWorkflowId"], child_body["input"]) == (workflow_id, {"x": 1})
    await work(client, "w_c", {"r": 42})
    await drain(api_app)
    body = await wf(client, workflow_id)
    assert body["status"] == "COMPLETED"
    assert body["tasks"][0]["outputData"] == {"subWorkflowId": child_id, "r": 42}


async def test_terminating_the_parent_terminates_the_child(client: httpx.AsyncClient) -> None:
    child = {"name": "child", "version": 1, "tasks": [simple("c")]}
    await client.post("/api/metadata/workflow", json=child)
    tasks = [
        {
            "name": "sub",
            "taskReferenceName": "sub",
            "type": "SUB_WORKFLOW",
            "subWorkflowParam": {"name": "child"},
        }
    ]
    workflow_id = await run(client, tasks)
    child_id = (await wf(client, workflow_id))["tasks"][0]["subWorkflowId"]
    assert (await client.delete(f"/api/workflow/{workflow_id}")).status_code == 200
    assert (await wf(client, child_id))["status"] == "TERMINATED"


async def test_a_failed_child_fails_the_parent(client: httpx.AsyncClient, api_app: FastAPI) -> None:
    await client.post("/api/metadata/taskdefs", json=[{"name": "w_c", "retryCount": 0}])
    child = {"name": "child", "version": 1, "tasks": [simple("c")]}
    await client.post("/api/metadata/workflow", json=child)
    tasks = [
        {
            "name": "sub",
            "taskReferenceName": "sub",
            "type": "SUB_WORKFLOW",
            "subWorkflowParam": {"name": "child"},
        }
    ]
    workflow_id = await run(client, tasks)
    await work(client, "w_c", status="FAILED")
    await drain(api_app)
    body = await wf(client, workflow_id)
    assert body["status"] == "FAILED"
    assert "Sub workflow" in body["tasks"][0]["reasonForIncompletion"]


async def test_sub_workflow_with_an_inline_definition_runs_it(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    child = {
        "name": "inline_child",
        "version": 1,
        "tasks": [simple("ic")],
        "outputParameters": {"r": "${ic.output.r}"},
    }
    tasks = [
        {
            "name": "sub",
            "taskReferenceName": "sub",
            "type": "SUB_WORKFLOW",
            "subWorkflowParam": {"name": "inline_child", "workflowDefinition": child},
            "inputParameters": {"x": 1},
        }
    ]
    workflow_id = await run(client, tasks)
    child_id = (await wf(client, workflow_id))["tasks"][0]["subWorkflowId"]
    child_body = await wf(client, child_id)
    assert (child_body["workflowName"], child_body["input"]) == ("inline_child", {"x": 1})
    await work(client, "w_ic", {"r": 7})
    await drain(api_app)
    body = await wf(client, workflow_id)
    assert body["status"] == "COMPLETED"
    assert body["tasks"][0]["outputData"] == {"subWorkflowId": child_id, "r": 7}


async def test_without_a_version_the_latest_definition_is_started(
    client: httpx.AsyncClient,
) -> None:
    for version in (1, 2):
        await define(client, {"name": "child", "version": version, "tasks": [simple("c")]})
    parent_id = await run(client, [sub()])
    child = await wf(client, (await wf(client, parent_id))["tasks"][0]["subWorkflowId"])
    assert (child["workflowName"], child["workflowVersion"]) == ("child", 2)


async def test_the_name_may_be_an_expression(client: httpx.AsyncClient) -> None:
    await define(client, {"name": "child", "version": 1, "tasks": [simple("c")]})
    parent_id = await run(client, [sub(name="${workflow.input.which}")], {"which": "child"})
    task = (await wf(client, parent_id))["tasks"][0]
    assert task["status"] == "IN_PROGRESS"
    assert (await wf(client, task["subWorkflowId"]))["workflowName"] == "child"


async def test_the_inline_definition_may_come_from_an_expression(
    client: httpx.AsyncClient,
) -> None:
    definition = {"name": "made_up", "version": 1, "tasks": [simple("m")]}
    task = sub(name="made_up", workflowDefinition="${workflow.input.def}")
    parent_id = await run(client, [task], {"def": definition})
    child_id = (await wf(client, parent_id))["tasks"][0]["subWorkflowId"]
    assert (await wf(client, child_id))["workflowName"] == "made_up"


async def test_the_task_input_records_what_was_started(client: httpx.AsyncClient) -> None:
    await define(client, {"name": "child", "version": 1, "tasks": [simple("c")]})
    task = {**sub(), "inputParameters": {"x": "${workflow.input.x}"}}
    task_input = (await wf(client, await run(client, [task], {"x": 3})))["tasks"][0]["inputData"]
    assert task_input["subWorkflowName"] == "child"
    assert task_input["subWorkflowVersion"] == 1
    assert task_input["workflowInput"] == {"x": 3}
    assert task_input["x"] == 3


async def test_a_missing_definition_fails_the_parent(client: httpx.AsyncClient) -> None:
    body = await wf(
        client, await run(client, [sub(name="${workflow.input.which}")], {"which": "nope"})
    )
    assert body["status"] == "FAILED"
    reason = body["tasks"][0]["reasonForIncompletion"]
    assert reason.startswith("The Task nope defined as a sub-workflow has no workflow definition")


async def test_the_child_inherits_the_parent_correlation_id(client: httpx.AsyncClient) -> None:
    await define(client, {"name": "child", "version": 1, "tasks": [simple("c")]})
    await define(client, {"name": "parent", "version": 1, "tasks": [sub()]})
    r = await client.post("/api/workflow", json={"name": "parent", "correlationId": "order-9"})
    child_id = (await wf(client, r.text))["tasks"][0]["subWorkflowId"]
    assert (await wf(client, child_id))["correlationId"] == "order-9"


async def test_a_terminated_child_cancels_the_parent_task_and_terminates_the_parent(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    await define(client, {"name": "child", "version": 1, "tasks": [simple("c")]})
    parent_id = await run(client, [sub(), simple("after")])
    child_id = (await wf(client, parent_id))["tasks"][0]["subWorkflowId"]
    r = await client.delete(f"/api/workflow/{child_id}", params={"reason": "stop it"})
    assert r.status_code == 200
    await drain(api_app)
    child = await wf(client, child_id)
    assert (child["status"], child["tasks"][0]["status"]) == ("TERMINATED", "CANCELED")
    parent = await wf(client, parent_id)
    assert (parent["status"], parent["tasks"][0]["status"]) == ("TERMINATED", "CANCELED")
    assert parent["tasks"][0]["reasonForIncompletion"] == (
        f"Sub workflow {child_id} failure reason: stop it"
    )
    assert "stop it" in parent["reasonForIncompletion"]


async def test_a_timed_out_child_times_out_the_parent_task(
    client: httpx.AsyncClient, api_app: FastAPI, clock: ManualClock
) -> None:
    child = {
        "name": "child",
        "version": 1,
        "tasks": [simple("c")],
        "timeoutSeconds": 10,
        "timeoutPolicy": "TIME_OUT_WF",
    }
    await define(client, child)
    parent_id = await run(client, [sub()])
    child_id = (await wf(client, parent_id))["tasks"][0]["subWorkflowId"]
    clock.advance(10_000)
    assert (await client.put(f"/api/workflow/decide/{child_id}")).status_code == 200
    assert (await wf(client, child_id))["status"] == "TIMED_OUT"
    await drain(api_app)
    parent = await wf(client, parent_id)
    assert (parent["status"], parent["tasks"][0]["status"]) == ("TIMED_OUT", "TIMED_OUT")


async def test_the_child_failure_reason_is_carried_to_the_parent_task(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    parent_id, child_id = await failed_parent(client, api_app)
    child = await wf(client, child_id)
    task = (await wf(client, parent_id))["tasks"][0]
    assert task["status"] == "FAILED"
    assert task["reasonForIncompletion"] == (
        f"Sub workflow {child_id} failure reason: {child['reasonForIncompletion']}"
    )


# -- retry ----------------------------------------------------------------------------------


async def test_retrying_the_parent_starts_a_new_child_for_the_failed_task(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    parent_id, child_id = await failed_parent(client, api_app)
    await retry(client, parent_id)
    body = await wf(client, parent_id)
    assert body["status"] == "RUNNING"
    first, again = body["tasks"]
    assert (first["status"], first["retried"]) == ("FAILED", True)
    assert (again["status"], again["retriedTaskId"]) == ("IN_PROGRESS", first["taskId"])
    assert again["subWorkflowId"] not in (None, child_id)
    assert (await wf(client, child_id))["status"] == "FAILED"
    assert (await wf(client, again["subWorkflowId"]))["status"] == "RUNNING"


async def test_resume_subworkflow_tasks_retries_the_same_child(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    parent_id, child_id = await failed_parent(client, api_app)
    await retry(client, parent_id, resume=True)
    child = await wf(client, child_id)
    assert child["status"] == "RUNNING"
    assert [t["status"] for t in child["tasks"]] == ["FAILED", "SCHEDULED"]
    assert child["tasks"][1]["retriedTaskId"] == child["tasks"][0]["taskId"]
    parent = await wf(client, parent_id)
    assert parent["status"] == "RUNNING"
    assert "reasonForIncompletion" not in parent
    assert refs(parent) == ["sub"]
    task = parent["tasks"][0]
    assert (task["status"], task["subWorkflowId"]) == ("IN_PROGRESS", child_id)
    assert task["outputData"] == {"subWorkflowId": child_id}
    assert "reasonForIncompletion" not in task


async def test_parent_completes_once_the_retried_child_completes(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    parent_id, child_id = await failed_parent(client, api_app)
    await retry(client, parent_id, resume=True)
    await work(client, "w_c", {"r": 1})
    await drain(api_app)
    assert (await wf(client, child_id))["status"] == "COMPLETED"
    parent = await wf(client, parent_id)
    assert task_of(parent, "sub")["status"] == "COMPLETED"
    assert task_of(parent, "sub")["outputData"] == {"subWorkflowId": child_id, "r": 1}
    await work(client, "w_after")
    assert (await wf(client, parent_id))["status"] == "COMPLETED"


async def test_retrying_the_child_revives_the_parent_waiting_on_it(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    parent_id, child_id = await failed_parent(client, api_app)
    await retry(client, child_id)
    parent = await wf(client, parent_id)
    assert parent["status"] == "RUNNING"
    assert (parent["failedReferenceTaskNames"], parent["failedTaskNames"]) == ([], [])
    assert [(t["status"], t["subWorkflowId"]) for t in parent["tasks"]] == [
        ("IN_PROGRESS", child_id)
    ]
    logs = (await client.get(f"/api/tasks/{parent['tasks'][0]['taskId']}/log")).json()
    assert [entry["log"] for entry in logs] == [f"Sub workflow {child_id} retried."]
    await work(client, "w_c")
    await drain(api_app)
    await work(client, "w_after")
    assert (await wf(client, parent_id))["status"] == "COMPLETED"


async def test_resume_retry_after_the_child_was_terminated_reruns_its_cancelled_task(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    await define(client, {"name": "child", "version": 1, "tasks": [simple("c")]})
    parent_id = await run(client, [sub()])
    child_id = (await wf(client, parent_id))["tasks"][0]["subWorkflowId"]
    assert (await client.delete(f"/api/workflow/{child_id}")).status_code == 200
    await drain(api_app)
    parent = await wf(client, parent_id)
    assert (parent["status"], parent["tasks"][0]["status"]) == ("TERMINATED", "CANCELED")
    await retry(client, parent_id, resume=True)
    child = await wf(client, child_id)
    assert child["status"] == "RUNNING"
    assert [t["status"] for t in child["tasks"]] == ["CANCELED", "SCHEDULED"]
    parent = await wf(client, parent_id)
    assert parent["status"] == "RUNNING"
    assert [(t["status"], t["subWorkflowId"]) for t in parent["tasks"]] == [
        ("IN_PROGRESS", child_id)
    ]
    await work(client, "w_c")
    await drain(api_app)
    assert (await wf(client, parent_id))["status"] == "COMPLETED"


async def test_plain_retry_after_the_child_was_terminated_starts_a_new_child(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    await define(client, {"name": "child", "version": 1, "tasks": [simple("c")]})
    parent_id = await run(client, [sub()])
    child_id = (await wf(client, parent_id))["tasks"][0]["subWorkflowId"]
    await client.delete(f"/api/workflow/{child_id}")
    await drain(api_app)
    await retry(client, parent_id)
    parent = await wf(client, parent_id)
    new_child = task_of(parent, "sub")["subWorkflowId"]
    assert new_child != child_id
    assert (await wf(client, child_id))["status"] == "TERMINATED"
    assert (await wf(client, new_child))["status"] == "RUNNING"


async def test_resume_retry_goes_down_to_the_deepest_failed_workflow(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    await no_retries(client, "w_c")
    await define(client, {"name": "child", "version": 1, "tasks": [simple("c")]})
    await define(client, {"name": "middle", "version": 1, "tasks": [sub()]})
    top_id = await run(client, [sub("mid", "middle")])
    middle_id = (await wf(client, top_id))["tasks"][0]["subWorkflowId"]
    child_id = (await wf(client, middle_id))["tasks"][0]["subWorkflowId"]
    await work(client, "w_c", status="FAILED")
    await drain(api_app)
    assert (await wf(client, top_id))["status"] == "FAILED"
    await retry(client, top_id, resume=True)
    for workflow_id, ref in ((top_id, "mid"), (middle_id, "sub")):
        body = await wf(client, workflow_id)
        assert body["status"] == "RUNNING"
        assert [t["referenceTaskName"] for t in body["tasks"]] == [ref]
        assert body["tasks"][0]["status"] == "IN_PROGRESS"
    assert [t["status"] for t in (await wf(client, child_id))["tasks"]] == ["FAILED", "SCHEDULED"]
    await work(client, "w_c")
    await drain(api_app)
    assert [(await wf(client, i))["status"] for i in (child_id, middle_id, top_id)] == [
        "COMPLETED",
        "COMPLETED",
        "COMPLETED",
    ]


async def test_retrying_a_nested_child_revives_every_ancestor(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    await no_retries(client, "w_c")
    await define(client, {"name": "child", "version": 1, "tasks": [simple("c")]})
    await define(client, {"name": "middle", "version": 1, "tasks": [sub()]})
    top_id = await run(client, [sub("mid", "middle")])
    middle_id = (await wf(client, top_id))["tasks"][0]["subWorkflowId"]
    child_id = (await wf(client, middle_id))["tasks"][0]["subWorkflowId"]
    await work(client, "w_c", status="FAILED")
    await drain(api_app)
    await retry(client, child_id)
    assert [(await wf(client, i))["status"] for i in (child_id, middle_id, top_id)] == [
        "RUNNING",
        "RUNNING",
        "RUNNING",
    ]
    await work(client, "w_c")
    await drain(api_app)
    assert (await wf(client, top_id))["status"] == "COMPLETED"


async def test_resume_retry_in_a_fork_also_reruns_the_cancelled_branch(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    await no_retries(client, "w_c")
    await define(client, {"name": "child", "version": 1, "tasks": [simple("c")]})
    fork = {
        "name": "fork",
        "taskReferenceName": "fork",
        "type": "FORK_JOIN",
        "forkTasks": [[sub()], [simple("side")]],
    }
    join = {"name": "join", "taskReferenceName": "join", "type": "JOIN", "joinOn": ["sub", "side"]}
    parent_id = await run(client, [fork, join])
    child_id = task_of(await wf(client, parent_id), "sub")["subWorkflowId"]
    await work(client, "w_c", status="FAILED")
    await drain(api_app)
    parent = await wf(client, parent_id)
    assert parent["status"] == "FAILED"
    assert task_of(parent, "side")["status"] == "CANCELED"
    await retry(client, parent_id, resume=True)
    parent = await wf(client, parent_id)
    assert task_of(parent, "sub")["subWorkflowId"] == child_id
    assert [task_of(parent, r)["status"] for r in ("sub", "side", "join")] == [
        "IN_PROGRESS",
        "SCHEDULED",
        "IN_PROGRESS",
    ]
    await work(client, "w_side")
    await work(client, "w_c", {"r": 2})
    await drain(api_app)
    parent = await wf(client, parent_id)
    assert parent["status"] == "COMPLETED"
    assert task_of(parent, "join")["outputData"]["sub"] == {"subWorkflowId": child_id, "r": 2}


async def test_retrying_the_child_of_an_optional_task_leaves_the_parent_alone(
    client: httpx.AsyncClient, api_app: FastAPI
) -> None:
    await no_retries(client, "w_c")
    await define(client, {"name": "child", "version": 1, "tasks": [simple("c")]})
    parent_id = await run(client, [{**sub(), "optional": True}])
    child_id = (await wf(client, parent_id))["tasks"][0]["subWorkflowId"]
    await work(client, "w_c", status="FAILED")
    await drain(api_app)
    parent = await wf(client, parent_id)
    assert (parent["status"], parent["tasks"][0]["status"]) == (
        "COMPLETED",
        "COMPLETED_WITH_ERRORS",
    )
    await retry(client, child_id)
    assert (await wf(client, child_id))["status"] == "RUNNING"
    assert (await wf(client, parent_id))["status"] == "COMPLETED"


async def test_resume_retry_of_a_running_parent_is_404(
    client: httpx.AsyncClient,
) -> None:
    await define(client, {"name": "child", "version": 1, "tasks": [simple("c")]})
    parent_id = await run(client, [sub()])
    r = await client.post(
        f"/api/workflow/{parent_id}/retry", params={"resumeSubworkflowTasks": "true"}
    )
    assert r.status_code == 404
    assert r.json()["message"] == "Workflow is still running.  status=RUNNING"
