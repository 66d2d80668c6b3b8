"""The shared export IO manager: object keys, partitions, manifests, metadata, the commit protocol.

A provider subclass only knows its SDK: how to stage an upload that becomes visible whole at
`commit`, how to read/write/delete a small object, and how to name a key as a URI.

Commit protocol for one partition:
1. stream the rows into a staged upload (nothing visible at the final key yet);
2. check what was staged against what was serialized: its size, and the MD5 of each part,
   block or object as the provider reports it (the sha256 of the stored bytes goes to the manifest);
3. under the partition's lock: publish the object (or, for zero rows, remove any earlier one),
   remove an earlier object under another name (compression changed), then write the manifest.
A failure before 3 aborts the upload and leaves the previous object and manifest as they were.
"""

from __future__ import annotations

import hashlib
import time
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import ClassVar, Protocol

from dagster import ConfigurableIOManager, Failure, InputContext, MetadataValue, OutputContext, get_dagster_logger
from pydantic import BaseModel, Field, field_validator

from xeroml_pipelines.export.compression import EXTENSIONS, Compression, compressor
from xeroml_pipelines.export.manifest import Manifest
from xeroml_pipelines.export.ndjson import Chunk, serialize
from xeroml_pipelines.export.pipeline import prefetched
from xeroml_pipelines.export.stream import ExportStream
from xeroml_pipelines.export.window import Window
from xeroml_pipelines.identifiers import validate_prefix

MANIFESTS_DIR = "_manifests"

_CONTENT_TYPES = {".json": "application/json", ".jsonl": "application/x-ndjson", ".gz": "application/gzip", ".zst": "application/zstd"}


def content_type(key: str) -> str:
    return next((t for ext, t in _CONTENT_TYPES.items() if key.endswith(ext)), "application/octet-stream")


class DestinationError(Exception):
    """A provider failure, told in our words: the bucket/container, the cause, never a secret.

    `permanent` errors (no such bucket, access denied, bad credentials) fail the run without
    retries; transient ones (throttling, 5xx, connection lost) are left to the step's retry
    policy after the SDK's own retries are spent.
    """

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class StagedUpload(Protocol):
    def write(self, data: bytes) -> None: ...

    def commit(self, size: int) -> None:
        """Make the object visible at its key, whole, after checking it holds `size` bytes."""

    def abort(self) -> None:
        """Discard what was staged; nothing may remain visible or billed."""


class ExportedPartition(BaseModel):
    """What a downstream asset gets: where the partition's data is, not the data."""

    partition: str
    window: dict[str, str]
    uri: str | None  # None: the partition had no rows and has no data object
    object_key: str | None
    manifest_uri: str
    rows: int
    bytes: int
    sha256: str | None
    compression: str


class ExportIOManager(ConfigurableIOManager):
    prefix: str = Field(default="", description="Key prefix under the destination root, e.g. 'xeroml-export'")
    compression: Compression = "none"

    @field_validator("prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        return validate_prefix(value)

    # ---- provider hooks -------------------------------------------------------------------

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

    def local_copy(self, key: str, directory: Path) -> Path:
        """A local file holding the object: downloaded into `directory` unless already local."""
        dest = directory / key.rsplit("/", 1)[-1]
        self.download(key, dest)
        return dest

    @abstractmethod
    def list_objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        """`(key, size)` of every object under `prefix`."""

    def partition_lock(self, key: str) -> AbstractContextManager[object]:
        """Serializes the commit of one partition between concurrent runs."""
        return nullcontext()

    # ---- layout ------------------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def data_key(self, table: str, window: Window) -> str:
        return self._key(table, window.relative_path + EXTENSIONS[self.compression])

    def manifest_key(self, table: str, window: Window) -> str:
        # Outside `{table}/`: a `{table}/*.jsonl` glob or a COPY of the folder never sees it.
        return self._key(MANIFESTS_DIR, table, window.relative_path + ".json")

    def read_manifest(self, key: str) -> Manifest | None:
        try:
            return Manifest.model_validate_json(self.read_bytes(key))
        except FileNotFoundError:
            return None

    # ---- Dagster -----------------------------------------------------------------------------

    def handle_output(self, context: OutputContext, obj: ExportStream) -> None:
        if not isinstance(obj, ExportStream):
            raise TypeError(f"{type(self).__name__} stores ExportStream outputs, got {type(obj).__name__}")
        if [key for key, _ in obj.partitions] != list(context.asset_partition_keys):
            raise ValueError(f"stream partitions {[k for k, _ in obj.partitions]} do not match the run's {context.asset_partition_keys}")
        try:
            manifests = self._export(obj, context.run_id)
        except DestinationError as e:
            if e.permanent:
                raise Failure(description=str(e), allow_retries=False) from None
            raise
        for m in manifests:
            # partition-scoped: a range run still reports each partition's own numbers
            context.step_context.add_asset_metadata(_metadata(m), partition_key=m.partition)
            context.log.info(
                f"{obj.table} {m.partition}: {m.rows} rows ({m.tombstones} tombstones), "
                f"{m.bytes} bytes -> {m.uri or 'no data object (zero rows)'}"
            )

    # ---- a range's partitions per query --------------------------------------------------------

    # Upload buffers (a part, chunk or block each) of the files a range query has open at once
    # stay within this; a partition's own file holds one buffer, however large the partition.
    UPLOAD_BUFFERS_BUDGET: ClassVar[int] = 512 * 1024 * 1024

    @property
    def upload_buffer_bytes(self) -> int:
        """What one open upload holds in memory before sending it on (0: writes go straight out)."""
        return 0

    def partitions_per_query(self) -> int | None:
        """How many partitions one query may feed at once (None: all of a range)."""
        return max(1, self.UPLOAD_BUFFERS_BUDGET // self.upload_buffer_bytes) if self.upload_buffer_bytes else None

    def _export(self, stream: ExportStream, run_id: str | None) -> list[Manifest]:
        """One query per group of consecutive partitions (a whole range when the destination can
        have that many files open), its rows streamed into one object per partition; a group's
        objects are committed when its query ends. A failure aborts the group's uploads, leaving
        earlier groups committed and this and later ones untouched."""
        clock = _Clock()
        manifests: list[Manifest] = []
        size = self.partitions_per_query() or len(stream.partitions)
        for first in range(0, len(stream.partitions), size):
            group = stream.partitions[first : first + size]
            writers = {window.bucket: _PartitionWriter(self, stream, key, window) for key, window in group}
            try:
                # three stages on their own threads: ClickHouse -> cutting into partitions -> compress and upload (here)
                with (
                    stream.open(group) as batches,
                    prefetched(batches) as ahead,
                    prefetched(serialize(ahead)) as chunks,
                ):
                    for chunk in chunks:
                        writer = writers.get(chunk.bucket)
                        if writer is None:
                            raise RuntimeError(f"rows of partition bucket {chunk.bucket} arrived outside {group[0][0]}..{group[-1][0]} for {stream.table}")
                        writer.add(chunk)
                for writer in writers.values():  # in time order; partitions without rows get their manifest
                    manifests.append(writer.commit(clock, run_id))
            finally:
                for writer in writers.values():
                    writer.abort()
        return manifests

    def _remove(self, key: str) -> None:
        try:
            self.delete(key)
        except PermissionError:
            # Deleting is an optional permission: an empty object (zero lines) neutralizes the
            # stale one, so no loader reads its records twice.
            if self.exists(key):
                get_dagster_logger().warning(f"{self.uri(key)}: no permission to delete; replaced it with an empty object")
                self.write_small(key, b"")

    def load_input(self, context: InputContext) -> ExportedPartition | dict[str, ExportedPartition]:
        table = context.asset_key.path[-1]
        partitions_def = context.asset_partitions_def
        loaded = {key: self._load(table, partitions_def.time_window_for_partition_key(key), key) for key in context.asset_partition_keys}
        # One upstream partition gives the bare object, several a dict by partition key.
        return next(iter(loaded.values())) if len(loaded) == 1 else loaded

    def _load(self, table: str, time_window, partition: str) -> ExportedPartition:
        window = Window(time_window.start, time_window.end)
        manifest_key = self.manifest_key(table, window)
        manifest = self.read_manifest(manifest_key)
        if manifest is None:
            raise FileNotFoundError(f"no export manifest for {table} partition {partition} at {self.uri(manifest_key)}")
        return ExportedPartition(
            partition=partition,
            window=manifest.window,
            uri=manifest.uri,
            object_key=manifest.object_key,
            manifest_uri=self.uri(manifest_key),
            rows=manifest.rows,
            bytes=manifest.bytes,
            sha256=manifest.sha256,
            compression=manifest.compression,
        )


@dataclass(frozen=True)
class VerifyReport:
    table: str
    manifests: int
    objects: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(io: ExportIOManager, table: str, deep: bool = False) -> VerifyReport:
    """Compare a table's manifests with the objects under its prefix: every manifest's object
    exists with its size (and, with `deep`, its sha256), and every data object has a manifest."""
    objects = dict(io.list_objects(io._key(table) + "/"))
    manifest_keys = [k for k, _ in io.list_objects(io._key(MANIFESTS_DIR, table) + "/") if k.endswith(".json")]
    problems: list[str] = []
    referenced: set[str] = set()
    for key in manifest_keys:
        try:
            m = Manifest.model_validate_json(io.read_bytes(key))
        except (ValueError, FileNotFoundError) as e:
            problems.append(f"{io.uri(key)}: unreadable manifest ({type(e).__name__})")
            continue
        if m.object_key is None:
            continue
        referenced.add(m.object_key)
        if m.object_key not in objects:
            problems.append(f"{io.uri(m.object_key)}: missing, but manifest {key} lists it ({m.rows} rows)")
        elif objects[m.object_key] != m.bytes:
            problems.append(f"{io.uri(m.object_key)}: {objects[m.object_key]} bytes, manifest says {m.bytes}")
        elif deep and hashlib.sha256(io.read_bytes(m.object_key)).hexdigest() != m.sha256:
            problems.append(f"{io.uri(m.object_key)}: sha256 differs from its manifest")
    for key, size in sorted(objects.items()):
        # zero-byte objects are stale files neutralized where deleting is not permitted
        if key not in referenced and size > 0:
            problems.append(f"{io.uri(key)}: data object without a manifest (partial run or stale file)")
    return VerifyReport(table, len(manifest_keys), len(objects), tuple(problems))


class _Clock:
    def __init__(self) -> None:
        self.started_at = datetime.now(timezone.utc)
        self._t0 = time.perf_counter()

    @property
    def seconds(self) -> float:
        return round(time.perf_counter() - self._t0, 3)


def _utc(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


class _PartitionWriter:
    """One partition's object: compressed, hashed and counted as it streams, then committed."""

    def __init__(self, io: ExportIOManager, stream: ExportStream, partition: str, window: Window) -> None:
        self.io, self.stream, self.partition, self.window = io, stream, partition, window
        self.data_key = io.data_key(stream.table, window)
        self.manifest_key = io.manifest_key(stream.table, window)
        self._z = compressor(io.compression)
        self._digest = hashlib.sha256()
        self._upload: StagedUpload | None = None
        self.rows = self.tombstones = self.invalid_utf8 = self.stored = self.raw = self.fingerprint = 0

    def _put(self, data: bytes) -> None:
        if data:
            if self._upload is None:
                self._upload = self.io.open_upload(self.data_key)
            self._upload.write(data)
            self._digest.update(data)
            self.stored += len(data)

    def add(self, chunk: Chunk) -> None:
        self.rows += chunk.rows
        self.tombstones += chunk.tombstones
        self.invalid_utf8 += chunk.invalid_utf8
        self.raw += len(chunk.data)
        self.fingerprint ^= chunk.fingerprint
        self._put(self._z.compress(chunk.data))

    def abort(self) -> None:
        if self._upload is not None:
            self._upload.abort()
            self._upload = None

    def commit(self, clock: _Clock, run_id: str | None) -> Manifest:
        io = self.io
        try:
            if self.rows:
                self._put(self._z.flush())
            with io.partition_lock(self.manifest_key):
                previous = io.read_manifest(self.manifest_key)
                if self._upload is not None:
                    self._upload.commit(self.stored)
                    self._upload = None
                else:
                    # Zero rows: a file from an earlier run of this window would now be a duplicate.
                    io._remove(self.data_key)
                object_key = self.data_key if self.rows else None
                if previous and previous.object_key and previous.object_key != object_key:
                    io._remove(previous.object_key)
                manifest = Manifest(
                    export=self.stream.export_name,
                    project_id=self.stream.project_id,
                    table=self.stream.table,
                    partition=self.partition,
                    mode=self.stream.mode,
                    window=self.window.as_dict(),
                    object_key=object_key,
                    uri=io.uri(self.data_key) if self.rows else None,
                    compression=io.compression,
                    rows=self.rows,
                    tombstones=self.tombstones,
                    invalid_utf8=self.invalid_utf8,
                    bytes=self.stored,
                    uncompressed_bytes=self.raw,
                    sha256=self._digest.hexdigest() if self.rows else None,
                    fingerprint=f"{self.fingerprint:016x}",
                    query_started_at=_utc(clock.started_at),
                    query_seconds=clock.seconds,
                    exported_at=_utc(datetime.now(timezone.utc)),
                    run_id=run_id,
                )
                io.write_small(self.manifest_key, manifest.model_dump_json(indent=2).encode())
            return manifest
        finally:
            self.abort()


def _metadata(m: Manifest) -> dict[str, MetadataValue]:
    return {
        "uri": MetadataValue.text(m.uri or "(no rows: no data object)"),
        "rows": MetadataValue.int(m.rows),
        "tombstones": MetadataValue.int(m.tombstones),
        "invalid_utf8_values": MetadataValue.int(m.invalid_utf8),
        "bytes": MetadataValue.int(m.bytes),
        "uncompressed_bytes": MetadataValue.int(m.uncompressed_bytes),
        "query_seconds": MetadataValue.float(m.query_seconds),
        "window_start": MetadataValue.text(m.window["start"]),
        "window_end": MetadataValue.text(m.window["end"]),
        "sha256": MetadataValue.text(m.sha256 or ""),
    }
