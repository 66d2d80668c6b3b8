"""What every destination offers: a staged upload that becomes visible whole at commit, small
objects, delete, list, URIs, and one policy for removing a stale object.

A destination is a Dagster resource and its own configuration: an export's `destination:`
validates straight into it (its `provider` picks the class), so each setting is declared once.
The export's IO manager writes through it; the checks, sensors, `xeroml verify` and the
warehouse loads read through it. A provider's SDK is imported when its first client is opened,
so a configuration never loads a cloud SDK it does not use.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol, Self

from dagster import ConfigurableResource, get_dagster_logger
from pydantic import ConfigDict, Field, PrivateAttr, field_validator

from xeroml_pipelines.credentials import from_env
from xeroml_pipelines.identifiers import validate_prefix

MIB = 1024 * 1024

_CONTENT_TYPES = {
    ".json": "application/json",
    ".jsonl": "application/x-ndjson",
    ".gz": "application/gzip",
    ".zst": "application/zstd",
    ".parquet": "application/vnd.apache.parquet",
}


def content_type(key: str) -> str:
    return next((t for ext, t in _CONTENT_TYPES.items() if key.endswith(ext)), "application/octet-stream")


class StagedUpload(Protocol):
    def write(self, data: bytes | memoryview) -> None: ...

    def commit(self, size: int) -> None:
        """Make the object visible at its key, whole, after checking it holds `size` bytes."""

    def abort(self) -> None:
        """Discard what was staged; nothing may remain visible or billed."""


class Destination(ConfigurableResource):
    """A folder or bucket the export writes to, under `prefix`."""

    model_config = ConfigDict(extra="forbid")

    prefix: str = Field(default="", description="Key prefix under the destination root, e.g. 'xeroml-export'")

    # credentials given in code (the export registry's stored ones), never in the configuration
    _stored_credentials: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the export's files are, for a person: the root and the prefix."""

    def with_credentials(self, credentials: Mapping[str, str]) -> Self:
        """A copy of this destination that holds `credentials` (by setting name without `_env`),
        used instead of the environment variables its `*_env` settings name. Dagster builds a
        resource anew for each run, so such a copy is used directly, never through Dagster."""
        copy = self.model_copy()
        copy._stored_credentials = dict(credentials)
        return copy

    def credential(self, name: str) -> str | None:
        """The secret setting `name`: its stored value, else the environment variable that its
        `<name>_env` setting names, read now; None when neither is given."""
        if name in self._stored_credentials:
            return self._stored_credentials[name]
        return from_env(getattr(self, f"{name}_env"), f"destination.{name}_env")

    @field_validator("prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        return validate_prefix(value)

    @property
    def upload_buffer_bytes(self) -> int:
        """What one open upload holds in memory before sending it on (0: writes go straight out)."""
        return 0

    def close(self) -> None:
        """Releases the clients this destination opened (Dagster calls it after a step; the
        fleet, which opens destinations itself, after its run)."""

    def teardown_after_execution(self, context: Any) -> None:
        self.close()

    @abstractmethod
    def uri(self, key: str) -> str: ...

    @abstractmethod
    def open_upload(self, key: str) -> StagedUpload: ...

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """The object's bytes; `FileNotFoundError` if there is none (Dagster relies on it)."""

    @abstractmethod
    def write_small(self, key: str, data: bytes) -> None:
        """Write a small object (a manifest) atomically."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object; a missing one is not an error; `PermissionError` if not allowed."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def download(self, key: str, dest: Path) -> None:
        """Stream the object into the file `dest`; `FileNotFoundError` if there is none."""

    @abstractmethod
    def list_objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        """`(key, size)` of every object under `prefix`."""

    def local_copy(self, key: str, directory: Path) -> Path:
        """A local file holding the object: downloaded into `directory` unless already local."""
        dest = directory / key.rsplit("/", 1)[-1]
        self.download(key, dest)
        return dest

    @abstractmethod
    def partition_lock(self, key: str) -> AbstractContextManager[object]:
        """Serializes the commit of one partition (`key`: its manifest) between concurrent runs."""

    def remove(self, key: str, empty: Callable[[], bytes] = bytes) -> None:
        """Remove a stale object so that no loader reads its records twice. Deleting is an
        optional permission: without it the object is replaced by `empty()`, a file of its
        format with no records (zero lines; a Parquet file of zero rows)."""
        try:
            self.delete(key)
        except PermissionError:
            if self.exists(key):
                get_dagster_logger().warning(f"{self.uri(key)}: no permission to delete; replaced it with an empty object")
                self.write_small(key, empty())
