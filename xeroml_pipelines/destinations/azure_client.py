"""dagster-azure's AzureBlobStorageResource plus the spec's connection string and a retry policy
whose waits are configurable (the storage SDK ignores azure-core's `retry_backoff_factor`)."""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager
from typing import Any

from azure.storage.blob import BlobServiceClient
from dagster_azure.blob import (
    AzureBlobStorageAnonymousCredential,
    AzureBlobStorageDefaultCredential,
    AzureBlobStorageKeyCredential,
    AzureBlobStorageResource,
    AzureBlobStorageSASTokenCredential,
)
from pydantic import Field, model_validator

from xeroml_pipelines.destinations.limits import MaxRetries, RetryBackoff


class AzureBlobClientResource(AzureBlobStorageResource):
    """dagster-azure's resource plus the spec's connection string. With `connection_string` set,
    `account_url` and `credential` are not used; otherwise they are (key, SAS, or
    DefaultAzureCredential for managed identity)."""

    account_url: str = ""
    credential: (
        AzureBlobStorageKeyCredential
        | AzureBlobStorageSASTokenCredential
        | AzureBlobStorageDefaultCredential
        | AzureBlobStorageAnonymousCredential
    ) = Field(default_factory=AzureBlobStorageAnonymousCredential, discriminator="credential_type")
    connection_string: str | None = Field(default=None, description="Secret: as EnvVar('...')")
    max_retries: MaxRetries
    retry_backoff_s: RetryBackoff
    timeout_s: int = Field(default=60, ge=1, description="Connection and read timeout per request")

    @model_validator(mode="after")
    def _one_way_in(self) -> AzureBlobClientResource:
        if not self.connection_string and not self.account_url:
            raise ValueError("give either connection_string or account_url with a credential")
        return self

    @contextmanager
    def get_client(self) -> Generator[BlobServiceClient, None, None]:
        # The storage SDK's own ExponentialRetry (azure-core's retry_backoff_factor is ignored by
        # it): its defaults (15 s, then +3^n s, +-3 s jitter) scaled to `retry_backoff_s`.
        scale = self.retry_backoff_s / 15
        options: dict[str, Any] = {
            "retry_total": self.max_retries,
            "initial_backoff": self.retry_backoff_s,
            "increment_base": 3 * scale,
            "random_jitter_range": 3 * scale,
            "connection_timeout": self.timeout_s,
            "read_timeout": self.timeout_s,
        }
        if self.connection_string:
            client = BlobServiceClient.from_connection_string(self.connection_string, **options)
        else:
            client = BlobServiceClient(account_url=self.account_url, credential=self._raw_credential(), **options)
        try:
            yield client
        finally:
            client.close()
