"""Azure Blob Storage: staged blocks, then one commit of the block list, through dagster-azure's
AzureBlobStorageResource (the Blob API, not ADLS Gen2/DFS).

Until the block list is committed nothing changes at the key; uncommitted blocks of a failed
run are discarded by the service after a week and are never visible.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError, ServiceRequestError, ServiceResponseError
from azure.storage.blob import BlobServiceClient, ContainerClient, ContentSettings
from dagster_azure.blob import (
    AzureBlobStorageAnonymousCredential,
    AzureBlobStorageDefaultCredential,
    AzureBlobStorageKeyCredential,
    AzureBlobStorageResource,
    AzureBlobStorageSASTokenCredential,
)
from pydantic import Field, PrivateAttr, model_validator

from xeroml_pipelines.io_managers.base import DestinationError, ExportIOManager, content_type

MIB = 1024 * 1024
MAX_BLOCKS = 50_000

_PERMANENT = {
    "ContainerNotFound": "the container does not exist",
    "AuthenticationFailed": "bad credentials (the key or SAS token was rejected)",
    "AuthorizationFailure": "bad credentials or access denied (the key/SAS was rejected or lacks a permission)",
    "AuthorizationPermissionMismatch": "access denied: the SAS token or role lacks a permission (needs read, write, list)",
    "AuthorizationResourceTypeMismatch": "access denied: the SAS token does not cover blobs",
    "InvalidAuthenticationInfo": "bad credentials",
    "AccountIsDisabled": "the storage account is disabled",
    "InvalidResourceName": "the container name is invalid",
    "Md5Mismatch": "a block's MD5 did not match what was sent",
    "InvalidBlockList": "a staged block was lost before the commit",
}


def _code(e: HttpResponseError) -> str | None:
    code = getattr(e, "error_code", None)
    return getattr(code, "value", code)


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
    max_retries: int = Field(default=6, ge=0, description="Retries of a failed request (exponential backoff)")
    retry_backoff_s: float = Field(default=15, gt=0, description="Wait before the first retry; later waits grow exponentially")
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
        options = {
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


class _BlockUpload:
    def __init__(self, io: AzureBlobExportIOManager, key: str) -> None:
        self._io, self._key = io, key
        self._blob = io._container.get_blob_client(key)
        self._block_size = io.block_size_mib * MIB
        self._buffer = bytearray()
        self._blocks: list[str] = []
        self._md5 = hashlib.md5()
        # Block ids are per upload: two concurrent runs of one partition never mix blocks.
        self._upload_id = uuid.uuid4().hex

    def write(self, data: bytes) -> None:
        self._buffer += data
        self._md5.update(data)
        while len(self._buffer) >= self._block_size:
            self._stage(bytes(self._buffer[: self._block_size]))
            del self._buffer[: self._block_size]

    def _stage(self, body: bytes) -> None:
        if len(self._blocks) >= MAX_BLOCKS:
            raise DestinationError(f"{self._io.uri(self._key)}: more than {MAX_BLOCKS} blocks; raise block_size_mib", permanent=True)
        block_id = base64.b64encode(f"{self._upload_id}-{len(self._blocks):06d}".encode()).decode()
        with self._io._errors("Put Block", self._key):
            # validate_content sends an MD5 the service checks before accepting the block.
            self._blob.stage_block(block_id, body, length=len(body), validate_content=True)
        self._blocks.append(block_id)

    def commit(self, size: int) -> None:
        if self._buffer or not self._blocks:
            self._stage(bytes(self._buffer))
            self._buffer.clear()
        settings = ContentSettings(content_type=content_type(self._key), content_md5=bytearray(self._md5.digest()))
        with self._io._errors("Put Block List", self._key):
            self._blob.commit_block_list(self._blocks, content_settings=settings)
            stored = self._blob.get_blob_properties().size
        if stored != size:
            raise DestinationError(f"{self._io.uri(self._key)} holds {stored} bytes after commit, expected {size}", permanent=False)

    def abort(self) -> None:
        self._buffer.clear()  # uncommitted blocks are invisible and expire on their own


class AzureBlobExportIOManager(ExportIOManager):
    azure: AzureBlobClientResource
    container: str
    block_size_mib: int = Field(default=16, ge=1, le=4000, description="Staged block size; 50,000 blocks max per blob")

    _client_cm: Any = PrivateAttr(default=None)
    _container_cache: ContainerClient | None = PrivateAttr(default=None)

    @property
    def upload_buffer_bytes(self) -> int:
        return self.block_size_mib * MIB

    @property
    def _container(self) -> ContainerClient:
        if self._container_cache is None:
            self._client_cm = self.azure.get_client()
            service = self._client_cm.__enter__()
            self._container_cache = service.get_container_client(self.container)
        return self._container_cache

    def teardown_after_execution(self, context) -> None:
        if self._client_cm is not None:
            self._client_cm.__exit__(None, None, None)
            self._client_cm = self._container_cache = None

    @contextmanager
    def _errors(self, operation: str, key: str) -> Iterator[None]:
        where = f"Azure container {self.container!r} ({operation} {key})"
        try:
            yield
        except ClientAuthenticationError as e:
            code = _code(e) or "AuthenticationFailed"
            raise DestinationError(f"{where}: {_PERMANENT.get(code, 'bad credentials')} [{code}]", permanent=True) from None
        except HttpResponseError as e:
            code = _code(e) or str(e.status_code)
            if code in _PERMANENT:
                raise DestinationError(f"{where}: {_PERMANENT[code]} [{code}]", permanent=True) from None
            if e.status_code in (400, 401, 403, 404, 409, 412):
                raise DestinationError(f"{where}: request refused [{code}]", permanent=True) from None
            raise DestinationError(f"{where}: Azure is throttling or unavailable [{code}], retries exhausted", permanent=False) from None
        except (ServiceRequestError, ServiceResponseError) as e:
            raise DestinationError(f"{where}: cannot reach Azure Blob Storage ({type(e).__name__}), retries exhausted", permanent=False) from None

    def uri(self, key: str) -> str:
        # `.url` carries a SAS token when one is used: never let it reach a manifest or a log.
        return f"{self._container.url.split('?', 1)[0]}/{key}"

    def open_upload(self, key: str) -> _BlockUpload:
        return _BlockUpload(self, key)

    def read_bytes(self, key: str) -> bytes:
        with self._errors("Get Blob", key):
            try:
                return self._container.get_blob_client(key).download_blob().readall()
            except ResourceNotFoundError as e:
                if _code(e) == "BlobNotFound":
                    raise FileNotFoundError(self.uri(key)) from None
                raise

    def write_small(self, key: str, data: bytes) -> None:
        with self._errors("Put Blob", key):
            self._container.get_blob_client(key).upload_blob(
                data, overwrite=True, validate_content=True, content_settings=ContentSettings(content_type=content_type(key))
            )

    def delete(self, key: str) -> None:
        with self._errors("Delete Blob", key):
            try:
                self._container.get_blob_client(key).delete_blob()
            except ResourceNotFoundError as e:
                if _code(e) != "BlobNotFound":
                    raise
            except HttpResponseError as e:
                if _code(e) == "AuthorizationPermissionMismatch":
                    raise PermissionError(self.uri(key)) from None
                raise

    def exists(self, key: str) -> bool:
        with self._errors("Get Blob Properties", key):
            return self._container.get_blob_client(key).exists()

    def download(self, key: str, dest: Path) -> None:
        with self._errors("Get Blob", key):
            try:
                downloader = self._container.get_blob_client(key).download_blob()
            except ResourceNotFoundError as e:
                if _code(e) == "BlobNotFound":
                    raise FileNotFoundError(self.uri(key)) from None
                raise
            with open(dest, "wb") as f:
                downloader.readinto(f)

    def list_objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        with self._errors("List Blobs", prefix):
            for blob in self._container.list_blobs(name_starts_with=prefix or None):
                yield blob.name, blob.size
