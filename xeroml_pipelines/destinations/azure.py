"""Azure Blob Storage: blocks staged on a private blob, committed and copied whole to the key,
through dagster-azure's AzureBlobStorageResource (the Blob API, not ADLS Gen2/DFS).

Blocks are staged on `_staging/<host>-<pid>-<uuid>.part`, never on the final name: committing a
blob's block list discards every other uncommitted block of that blob, so a second run staging on
the same final name would lose its blocks (`InvalidBlockList`). At commit, under the partition's
lock, the private blob's block list is committed, copied to the key by the service (a copy
within one account, no bytes through this process) and removed. Uncommitted blocks of a failed
run are never visible and are discarded by the service after a week.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobBlock, BlobServiceClient, ContainerClient, ContentSettings
from dagster import get_dagster_logger
from pydantic import PrivateAttr

from xeroml_pipelines.destinations.azure_client import AzureBlobClientResource
from xeroml_pipelines.destinations.base import MIB, content_type
from xeroml_pipelines.destinations.errors import DestinationError, Service
from xeroml_pipelines.destinations.limits import BlockSizeMiB
from xeroml_pipelines.destinations.object_store import ObjectStore

STAGING_DIR = "_staging"
_HOST = socket.gethostname().replace("-", "_")

MAX_BLOCKS = 50_000

AZURE = Service(
    "Azure Blob Storage",
    {
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
    },
)


def _code(e: HttpResponseError) -> str | None:
    code = getattr(e, "error_code", None)
    return getattr(code, "value", code)


class _BlockUpload:
    def __init__(self, container: AzureContainer, key: str) -> None:
        self._container, self._key = container, key
        self._staged_name = f"{STAGING_DIR}/{_HOST}-{os.getpid()}-{uuid.uuid4().hex}.part"
        self._staged = container.handle.get_blob_client(self._staged_name)
        self._staged_committed = False
        self._block_size = container.block_size_mib * MIB
        self._buffer = bytearray()
        self._blocks: list[str] = []
        self._md5 = hashlib.md5()

    def write(self, data: bytes | memoryview) -> None:
        self._buffer += data
        self._md5.update(data)
        while len(self._buffer) >= self._block_size:
            self._stage(bytes(self._buffer[: self._block_size]))
            del self._buffer[: self._block_size]

    def _stage(self, body: bytes) -> None:
        c = self._container
        if len(self._blocks) >= MAX_BLOCKS:
            raise DestinationError(f"{c.uri(self._key)}: more than {MAX_BLOCKS} blocks; raise block_size_mib", permanent=True)
        block_id = base64.b64encode(f"{len(self._blocks):06d}".encode()).decode()
        with c.errors("Put Block", self._key):
            # validate_content sends an MD5 the service checks before accepting the block.
            self._staged.stage_block(block_id, body, length=len(body), validate_content=True)
        self._blocks.append(block_id)

    def commit(self, size: int) -> None:
        c = self._container
        if self._buffer or not self._blocks:
            self._stage(bytes(self._buffer))
            self._buffer.clear()
        md5 = self._md5.digest()
        settings = ContentSettings(content_type=content_type(self._key), content_md5=bytearray(md5))
        with c.errors("Put Block List", self._key):
            self._staged.commit_block_list([BlobBlock(block_id) for block_id in self._blocks], content_settings=settings)
        self._staged_committed = True
        final = c.handle.get_blob_client(self._key)
        with c.errors("Copy Blob", self._key):
            # the staged blob's URL carries the SAS token when one is used: the source's authorization
            copy = final.start_copy_from_url(self._staged.url)
            status = str(copy["copy_status"])
            while status == "pending":
                time.sleep(0.2)
                status = str(final.get_blob_properties().copy.status)
            if status != "success":
                raise DestinationError(f"{c.uri(self._key)}: the service's copy ended {status}", permanent=False)
            stored = final.get_blob_properties()
        got_md5 = bytes(stored.content_settings.content_md5 or b"")
        if stored.size != size or got_md5 != md5:
            raise DestinationError(
                f"{c.uri(self._key)} holds {stored.size} bytes (MD5 {got_md5.hex() or 'none'}) after the copy, "
                f"expected {size} (MD5 {md5.hex()})",
                permanent=False,
            )
        self.abort()

    def abort(self) -> None:
        self._buffer.clear()
        if self._staged_committed:
            self._staged_committed = False
            try:
                self._staged.delete_blob()
            except ResourceNotFoundError:
                pass
            except (HttpResponseError, ServiceRequestError, ServiceResponseError) as e:
                # the object at the key is whole either way; nothing reads `_staging/`
                get_dagster_logger().warning(
                    f"{self._container.uri(self._staged_name)}: could not remove this staged copy ({type(e).__name__}); "
                    "delete it, or let a lifecycle rule on _staging/ do so"
                )
        # uncommitted blocks are invisible and expire on their own


class AzureContainer(ObjectStore):
    """An Azure Blob Storage container through the client resource `azure`."""

    azure: AzureBlobClientResource
    container: str
    block_size_mib: BlockSizeMiB

    _client_cm: AbstractContextManager[BlobServiceClient] | None = PrivateAttr(default=None)
    _handle: ContainerClient | None = PrivateAttr(default=None)

    @property
    def upload_buffer_bytes(self) -> int:
        return self.block_size_mib * MIB

    @property
    def handle(self) -> ContainerClient:
        if self._handle is None:
            self._client_cm = self.azure.get_client()
            self._handle = self._client_cm.__enter__().get_container_client(self.container)
        return self._handle

    def close(self) -> None:
        if self._client_cm is not None:
            self._client_cm.__exit__(None, None, None)
            self._client_cm = self._handle = None

    @contextmanager
    def errors(self, operation: str, key: str) -> Iterator[None]:
        where = f"Azure container {self.container!r} ({operation} {key})"
        try:
            yield
        except ClientAuthenticationError as e:
            code = _code(e) or "AuthenticationFailed"
            raise AZURE.bad_credentials(where, f"{AZURE.causes.get(code, 'bad credentials')} [{code}]") from None
        except HttpResponseError as e:
            raise AZURE.refused(where, _code(e), e.status_code) from None
        except (ServiceRequestError, ServiceResponseError) as e:
            raise AZURE.unreachable(where, e) from None

    def uri(self, key: str) -> str:
        # `.url` carries a SAS token when one is used: never let it reach a manifest or a log.
        return f"{self.handle.url.split('?', 1)[0]}/{key}"

    def open_upload(self, key: str) -> _BlockUpload:
        return _BlockUpload(self, key)

    def read_bytes(self, key: str) -> bytes:
        with self.errors("Get Blob", key):
            try:
                return self.handle.get_blob_client(key).download_blob().readall()
            except ResourceNotFoundError as e:
                if _code(e) == "BlobNotFound":
                    raise FileNotFoundError(self.uri(key)) from None
                raise

    def write_small(self, key: str, data: bytes) -> None:
        with self.errors("Put Blob", key):
            self.handle.get_blob_client(key).upload_blob(
                data, overwrite=True, validate_content=True, content_settings=ContentSettings(content_type=content_type(key))
            )

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        with self.errors("Get Blob", key):
            try:
                downloader = self.handle.get_blob_client(key).download_blob()
            except ResourceNotFoundError:
                return None
            return downloader.readall(), str(downloader.properties.etag)

    def write_if(self, key: str, data: bytes, version: str | None) -> str | None:
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
                if _code(e) == "BlobNotFound":  # released and removed meanwhile; ContainerNotFound is an error
                    return None
                raise

    def delete_if(self, key: str, version: str) -> bool:
        with self.errors("Delete Blob", key):
            try:
                self.handle.get_blob_client(key).delete_blob(etag=version, match_condition=MatchConditions.IfNotModified)
            except ResourceModifiedError:
                return False
            except ResourceNotFoundError as e:
                if _code(e) == "BlobNotFound":
                    return False
                raise
            except HttpResponseError as e:
                if _code(e) == "AuthorizationPermissionMismatch":
                    raise PermissionError(self.uri(key)) from None
                raise
        return True

    def delete(self, key: str) -> None:
        with self.errors("Delete Blob", key):
            try:
                self.handle.get_blob_client(key).delete_blob()
            except ResourceNotFoundError as e:
                if _code(e) != "BlobNotFound":
                    raise
            except HttpResponseError as e:
                if _code(e) == "AuthorizationPermissionMismatch":
                    raise PermissionError(self.uri(key)) from None
                raise

    def exists(self, key: str) -> bool:
        with self.errors("Get Blob Properties", key):
            return self.handle.get_blob_client(key).exists()

    def download(self, key: str, dest: Path) -> None:
        with self.errors("Get Blob", key):
            try:
                downloader = self.handle.get_blob_client(key).download_blob()
            except ResourceNotFoundError as e:
                if _code(e) == "BlobNotFound":
                    raise FileNotFoundError(self.uri(key)) from None
                raise
            with open(dest, "wb") as f:
                downloader.readinto(f)

    def list_objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        with self.errors("List Blobs", prefix):
            for blob in self.handle.list_blobs(name_starts_with=prefix or None):
                yield blob.name, blob.size
