"""A Blob service client for the spec's credentials: a connection string, or the account URL
with a SAS token, an account key or DefaultAzureCredential (managed identity). Imported only
when an Azure destination opens its client: the storage SDK takes about half a second to load."""

from __future__ import annotations

from typing import Any

from azure.storage.blob import BlobServiceClient


def blob_service_client(
    *,
    account_url: str | None,
    connection_string: str | None,
    key: str | None,
    max_retries: int,
    retry_backoff_s: float,
    timeout_s: int,
) -> BlobServiceClient:
    """`key`: a SAS token or an account key; neither (and no connection string): DefaultAzureCredential."""
    # The storage SDK's own ExponentialRetry (azure-core's retry_backoff_factor is ignored by
    # it): its defaults (15 s, then +3^n s, +-3 s jitter) scaled to `retry_backoff_s`.
    scale = retry_backoff_s / 15
    options: dict[str, Any] = {
        "retry_total": max_retries,
        "initial_backoff": retry_backoff_s,
        "increment_base": 3 * scale,
        "random_jitter_range": 3 * scale,
        "connection_timeout": timeout_s,
        "read_timeout": timeout_s,
    }
    if connection_string:
        return BlobServiceClient.from_connection_string(connection_string, **options)
    assert account_url, "validated: account_url goes with every credential but a connection string"
    credential: Any = key
    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    return BlobServiceClient(account_url=account_url, credential=credential, **options)
