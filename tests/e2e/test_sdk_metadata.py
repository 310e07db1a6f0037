"""The official conductor-python SDK's MetadataClient works against a real Baton process,
authenticated with an access key as against Orkes."""

from __future__ import annotations

import pytest
from conductor.client.configuration.configuration import Configuration
from conductor.client.configuration.settings.authentication_settings import (
    AuthenticationSettings,
)
from conductor.client.http.models.task_def import TaskDef
from conductor.client.http.models.workflow_def import WorkflowDef
from conductor.client.http.models.workflow_task import WorkflowTask
from conductor.client.http.rest import ApiException
from conductor.client.orkes.orkes_metadata_client import OrkesMetadataClient

from tests.conftest import ServerProcess


@pytest.fixture
def metadata_client(server: ServerProcess) -> OrkesMetadataClient:
    auth = AuthenticationSettings(key_id=server.admin_key_id, key_secret=server.admin_key_secret)
    return OrkesMetadataClient(
        Configuration(server_api_url=f"{server.url}/api", authentication_settings=auth)
    )


def _workflow(description: str) -> WorkflowDef:
    task = WorkflowTask(name="sdk_task", task_reference_name="sdk_task_ref", type="SIMPLE")
    return WorkflowDef(name="sdk_flow", version=1, description=description, tasks=[task])


def test_sdk_registers_reads_updates_and_unregisters_a_task_def(
    metadata_client: OrkesMetadataClient,
) -> None:
    metadata_client.register_task_def(TaskDef(name="sdk_task", retry_count=2))
    assert metadata_client.get_task_def("sdk_task").retry_count == 2

    metadata_client.update_task_def(TaskDef(name="sdk_task", retry_count=4))
    assert metadata_client.get_task_def("sdk_task").retry_count == 4
    assert [t.name for t in metadata_client.get_all_task_defs()] == ["sdk_task"]

    metadata_client.unregister_task_def("sdk_task")
    with pytest.raises(ApiException) as missing:
        metadata_client.get_task_def("sdk_task")
    assert missing.value.status == 404


def test_sdk_registers_reads_updates_and_unregisters_a_workflow_def(
    metadata_client: OrkesMetadataClient,
) -> None:
    metadata_client.register_workflow_def(_workflow("first"))
    fetched = metadata_client.get_workflow_def("sdk_flow")
    assert (fetched.version, fetched.description) == (1, "first")
    assert fetched.tasks[0].task_reference_name == "sdk_task_ref"

    metadata_client.update_workflow_def(_workflow("second"))
    assert metadata_client.get_workflow_def("sdk_flow", version=1).description == "second"
    assert [w.name for w in metadata_client.get_all_workflow_defs()] == ["sdk_flow"]

    metadata_client.unregister_workflow_def("sdk_flow", 1)
    with pytest.raises(ApiException) as missing:
        metadata_client.get_workflow_def("sdk_flow")
    assert missing.value.status == 404
