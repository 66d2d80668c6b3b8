"""One object's upload to Azure Blob Storage: blocks staged on a private blob, committed and
copied whole to the key.

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
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

from dagster import get_dagster_logger

from xeroml_pipelines.destinations.base import MIB, content_type
from xeroml_pipelines.destinations.errors import DestinationError

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

STAGING_DIR = "_staging"
_HOST = socket.gethostname().replace("-", "_")

MAX_BLOCKS = 50_000


class Container(Protocol):
    """What an upload needs of its container (destinations/azure.py)."""

    block_size_mib: int

    @property
    def handle(self) -> ContainerClient: ...

    def uri(self, key: str) -> str: ...

    def errors(self, operation: str, key: str) -> AbstractContextManager[None]: ...


class BlockUpload:
    def __init__(self, container: Container, key: str) -> None:
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
        from azure.storage.blob import BlobBlock, ContentSettings

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
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError, ServiceResponseError

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
