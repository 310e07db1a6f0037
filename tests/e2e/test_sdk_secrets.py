"""The official conductor-python SDK's OrkesSecretClient works against a real Baton process."""

from __future__ import annotations

import pytest
from conductor.client.configuration.configuration import Configuration
from conductor.client.configuration.settings.authentication_settings import (
    AuthenticationSettings,
)
from conductor.client.http.rest import ApiException
from conductor.client.orkes.models.metadata_tag import MetadataTag
from conductor.client.orkes.orkes_secret_client import OrkesSecretClient

from tests.conftest import ServerProcess


@pytest.fixture
def secret_client(server: ServerProcess) -> OrkesSecretClient:
    auth = AuthenticationSettings(key_id=server.admin_key_id, key_secret=server.admin_key_secret)
    return OrkesSecretClient(
        Configuration(server_api_url=f"{server.url}/api", authentication_settings=auth)
    )


def test_sdk_puts_reads_lists_and_deletes_a_secret(secret_client: OrkesSecretClient) -> None:
    secret_client.put_secret("sdk_token", "sdk-value-123")
    assert secret_client.get_secret("sdk_token") == "sdk-value-123"
    assert secret_client.secret_exists("sdk_token") is True
    assert secret_client.list_all_secret_names() == {"sdk_token"}
    assert secret_client.list_secrets_that_user_can_grant_access_to() == ["sdk_token"]

    secret_client.delete_secret("sdk_token")
    assert secret_client.secret_exists("sdk_token") is False
    with pytest.raises(ApiException) as missing:
        secret_client.get_secret("sdk_token")
    assert missing.value.status == 404


def test_sdk_overwrites_a_secret(secret_client: OrkesSecretClient) -> None:
    secret_client.put_secret("sdk_token", "first-value")
    secret_client.put_secret("sdk_token", "second-value")
    assert secret_client.get_secret("sdk_token") == "second-value"


def test_sdk_sets_reads_and_deletes_tags(secret_client: OrkesSecretClient) -> None:
    secret_client.put_secret("sdk_token", "v")
    secret_client.set_secret_tags(
        [MetadataTag("env", "prod"), MetadataTag("team", "a")], "sdk_token"
    )
    tags = secret_client.get_secret_tags("sdk_token")
    assert sorted((t.key, t.value) for t in tags) == [("env", "prod"), ("team", "a")]
    secret_client.delete_secret_tags([MetadataTag("env", "prod")], "sdk_token")
    assert [t.key for t in secret_client.get_secret_tags("sdk_token")] == ["team"]
