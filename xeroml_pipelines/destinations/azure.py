"""Azure Blob Storage, through the Blob API (not ADLS Gen2/DFS), as dagster-azure's
AzureBlobStorageResource uses it; an object's upload is staged and copied whole (azure_upload.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from xeroml_pipelines.destinations.azure_errors import azure_errors, error_code
from xeroml_pipelines.destinations.azure_upload import BlockUpload
from xeroml_pipelines.destinations.base import MIB, content_type
from xeroml_pipelines.destinations.object_store import ObjectStore
from xeroml_pipelines.identifiers import EnvVarName

if TYPE_CHECKING:  # the storage SDK loads when a client is opened: it takes about half a second
    from azure.storage.blob import BlobServiceClient, ContainerClient


class AzureContainer(ObjectStore):
    """Azure Blob Storage. Credentials: exactly one of a connection string, a SAS token, an
    account key (each from an env var), or DefaultAzureCredential (managed identity)."""

    provider: Literal["azure"] = "azure"
    container: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
    account_url: str | None = Field(default=None, description="https://<account>.blob.core.windows.net")
    connection_string_env: EnvVarName | None = None
    sas_token_env: EnvVarName | None = None
    account_key_env: EnvVarName | None = None
    default_credential: bool = False
    block_size_mib: int = Field(default=16, ge=1, le=4000, description="Staged block size; 50,000 blocks max per blob")
    max_retries: int = Field(default=6, ge=0, le=20, description="Retries of a failed request (exponential backoff)")
    retry_backoff_s: float = Field(
        default=15, gt=0, le=300, description="Wait before the first retry; later waits grow exponentially"
    )
    timeout_s: int = Field(default=60, ge=1, description="Connection and read timeout per request")

    _client: BlobServiceClient | None = PrivateAttr(default=None)
    _handle: ContainerClient | None = PrivateAttr(default=None)

    @field_validator("account_url")
    @classmethod
    def _account_url(cls, v: str | None) -> str | None:
        if v is not None and ("?" in v or "sig=" in v):
            raise ValueError("account_url must not carry a SAS token: put the token in the env var named by sas_token_env")
        if v is not None and not re.match(r"^https?://[^/\s]+(/[\w.-]+)*/?$", v):
            raise ValueError(f"must be http(s)://host[:port][/path], got {v!r}")
        return v

    @field_validator("container")
    @classmethod
    def _container(cls, v: str) -> str:
        if "--" in v:
            raise ValueError(f"container names cannot contain '--', got {v!r}")
        return v

    @model_validator(mode="after")
    def _one_credential(self) -> AzureContainer:
        given = [
            n for n in ("connection_string_env", "sas_token_env", "account_key_env", "default_credential") if getattr(self, n)
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of connection_string_env, sas_token_env, account_key_env, default_credential: true"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if not self.connection_string_env and not self.account_url:
            raise ValueError("account_url is required unless connection_string_env is given")
        return self

    @property
    def location(self) -> str:
        account = self.account_url or (
            f"${{{self.connection_string_env}}}" if self.connection_string_env else "(stored connection string)"
        )
        return f"azure:{account}/{self.container}/{self.prefix}"

    @property
    def upload_buffer_bytes(self) -> int:
        return self.block_size_mib * MIB

    @property
    def handle(self) -> ContainerClient:
        if self._handle is None:
            self._client = self._service_client()
            self._handle = self._client.get_container_client(self.container)
        return self._handle

    def _service_client(self) -> BlobServiceClient:
        from xeroml_pipelines.destinations.azure_client import blob_service_client

        return blob_service_client(
            account_url=self.account_url,
            connection_string=self.credential("connection_string"),
            key=self.credential("sas_token") or self.credential("account_key"),
            max_retries=self.max_retries,
            retry_backoff_s=self.retry_backoff_s,
            timeout_s=self.timeout_s,
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = self._handle = None

    def errors(self, operation: str, key: str) -> AbstractContextManager[None]:
        return azure_errors(f"Azure container {self.container!r} ({operation} {key})")

    def uri(self, key: str) -> str:
        # `.url` carries a SAS token when one is used: never let it reach a manifest or a log.
        return f"{self.handle.url.split('?', 1)[0]}/{key}"

    def open_upload(self, key: str) -> BlockUpload:
        return BlockUpload(self, key)

    def read_bytes(self, key: str) -> bytes:
        from azure.core.exceptions import ResourceNotFoundError

        with self.errors("Get Blob", key):
            try:
                return self.handle.get_blob_client(key).download_blob().readall()
            except ResourceNotFoundError as e:
                if error_code(e) == "BlobNotFound":
                    raise FileNotFoundError(self.uri(key)) from None
                raise

    def write_small(self, key: str, data: bytes) -> None:
        from azure.storage.blob import ContentSettings

        with self.errors("Put Blob", key):
            self.handle.get_blob_client(key).upload_blob(
                data, overwrite=True, validate_content=True, content_settings=ContentSettings(content_type=content_type(key))
            )

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        from azure.core.exceptions import ResourceNotFoundError

        with self.errors("Get Blob", key):
            try:
                downloader = self.handle.get_blob_client(key).download_blob()
            except ResourceNotFoundError:
                return None
            return downloader.readall(), str(downloader.properties.etag)

    def write_if(self, key: str, data: bytes, version: str | None) -> str | None:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

        blob = self.handle.get_blob_client(key)
        condition: dict[str, Any] = {"overwrite": False}  # sends If-None-Match: *
        if version is not None:
            condition = {"overwrite": True, "etag": version, "match_condition": MatchConditions.IfNotModified}
        with self.errors("Put Blob", key):
            try:
                return str(blob.upload_blob(data, validate_content=True, **condition)["etag"])
            except (ResourceExistsError, ResourceModifiedError):
                return None
            except ResourceNotFoundError as e:
                if error_code(e) == "BlobNotFound":  # released and removed meanwhile; ContainerNotFound is an error
                    return None
                raise

    def delete_if(self, key: str, version: str) -> bool:
        from azure.core import MatchConditions
        from azure.core.exceptions import HttpResponseError, ResourceModifiedError, ResourceNotFoundError

        with self.errors("Delete Blob", key):
            try:
                self.handle.get_blob_client(key).delete_blob(etag=version, match_condition=MatchConditions.IfNotModified)
            except ResourceModifiedError:
                return False
            except ResourceNotFoundError as e:
                if error_code(e) == "BlobNotFound":
                    return False
                raise
            except HttpResponseError as e:
                if error_code(e) == "AuthorizationPermissionMismatch":
                    raise PermissionError(self.uri(key)) from None
                raise
        return True

    def delete(self, key: str) -> None:
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        with self.errors("Delete Blob", key):
            try:
                self.handle.get_blob_client(key).delete_blob()
            except ResourceNotFoundError as e:
                if error_code(e) != "BlobNotFound":
                    raise
            except HttpResponseError as e:
                if error_code(e) == "AuthorizationPermissionMismatch":
                    raise PermissionError(self.uri(key)) from None
                raise

    def exists(self, key: str) -> bool:
        with self.errors("Get Blob Properties", key):
            return self.handle.get_blob_client(key).exists()

    def download(self, key: str, dest: Path) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with self.errors("Get Blob", key):
            try:
                downloader = self.handle.get_blob_client(key).download_blob()
            except ResourceNotFoundError as e:
                if error_code(e) == "BlobNotFound":
                    raise FileNotFoundError(self.uri(key)) from None
                raise
            with open(dest, "wb") as f:
                downloader.readinto(f)

    def list_objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        with self.errors("List Blobs", prefix):
            for blob in self.handle.list_blobs(name_starts_with=prefix or None):
                yield blob.name, blob.size
