"""The shared export IO manager: object keys, partitions, manifests, metadata, the commit protocol.

A provider subclass only knows its SDK: how to stage an upload that becomes visible whole at
`commit`, how to read/write/delete a small object, and how to name a key as a URI.

Commit protocol for one partition:
1. stream the rows into a staged upload (nothing visible at the final key yet);
2. check what was staged against what was serialized (rows, bytes, sha256);
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
from typing import Protocol

from dagster import ConfigurableIOManager, Failure, InputContext, MetadataValue, OutputContext, get_dagster_logger
from pydantic import BaseModel, Field, field_validator

from xeroml_pipelines.export.compression import EXTENSIONS, Compression, compressor
from xeroml_pipelines.export.manifest import Manifest
from xeroml_pipelines.export.ndjson import serialize
from xeroml_pipelines.export.stream import ExportStream
from xeroml_pipelines.export.window import Window
from xeroml_pipelines.identifiers import validate_prefix
from xeroml_pipelines.tables import SESSION_TOMBSTONE_COLUMNS, SOURCES

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

    def commit(self, size: int, sha256: str) -> None:
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
        partition_window = context.asset_partitions_time_window
        if (obj.window.start, obj.window.end) != (partition_window.start, partition_window.end):
            raise ValueError(f"stream window {obj.window} does not match partition window {partition_window}")
        try:
            manifest = self._export(obj, context.asset_partition_key, context.run_id)
        except DestinationError as e:
            if e.permanent:
                raise Failure(description=str(e), allow_retries=False) from None
            raise
        context.add_output_metadata(_metadata(manifest))
        context.log.info(
            f"{obj.table} {manifest.partition}: {manifest.rows} rows ({manifest.tombstones} tombstones), "
            f"{manifest.bytes} bytes -> {manifest.uri or 'no data object (zero rows)'}"
        )

    def _export(self, stream: ExportStream, partition: str, run_id: str | None) -> Manifest:
        data_key = self.data_key(stream.table, stream.window)
        manifest_key = self.manifest_key(stream.table, stream.window)
        tombstone_columns = SESSION_TOMBSTONE_COLUMNS if stream.table == "sessions" else SOURCES[stream.table].tombstone_columns
        digest = hashlib.sha256()
        z = compressor(self.compression)
        rows = tombstones = stored = raw = 0
        upload: StagedUpload | None = None
        started_at = datetime.now(timezone.utc)
        t0 = time.perf_counter()

        def put(data: bytes) -> None:
            nonlocal stored
            if data:
                assert upload is not None
                upload.write(data)
                digest.update(data)
                stored += len(data)

        try:
            with stream.open() as batches:
                for chunk in serialize(batches, tombstone_columns):
                    if upload is None:
                        upload = self.open_upload(data_key)
                    rows += chunk.rows
                    tombstones += chunk.tombstones
                    raw += len(chunk.data)
                    put(z.compress(chunk.data))
            if upload is not None:
                put(z.flush())
            query_seconds = time.perf_counter() - t0
            sha256 = digest.hexdigest() if rows else None
            with self.partition_lock(manifest_key):
                previous = self.read_manifest(manifest_key)
                if upload is not None:
                    upload.commit(stored, digest.hexdigest())
                    upload = None
                else:
                    # Zero rows: a file from an earlier run of this window would now be a duplicate.
                    self._remove(data_key)
                if previous and previous.object_key and previous.object_key != (data_key if rows else None):
                    self._remove(previous.object_key)
                manifest = Manifest(
                    export=stream.export_name,
                    project_id=stream.project_id,
                    table=stream.table,
                    partition=partition,
                    mode=stream.mode,
                    window=stream.window.as_dict(),
                    object_key=data_key if rows else None,
                    uri=self.uri(data_key) if rows else None,
                    compression=self.compression,
                    rows=rows,
                    tombstones=tombstones,
                    bytes=stored,
                    uncompressed_bytes=raw,
                    sha256=sha256,
                    query_started_at=started_at.isoformat().replace("+00:00", "Z"),
                    query_seconds=round(query_seconds, 3),
                    exported_at=datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
                    run_id=run_id,
                )
                self.write_small(manifest_key, manifest.model_dump_json(indent=2).encode())
            return manifest
        finally:
            if upload is not None:
                upload.abort()

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


def _metadata(m: Manifest) -> dict[str, MetadataValue]:
    return {
        "uri": MetadataValue.text(m.uri or "(no rows: no data object)"),
        "rows": MetadataValue.int(m.rows),
        "tombstones": MetadataValue.int(m.tombstones),
        "bytes": MetadataValue.int(m.bytes),
        "uncompressed_bytes": MetadataValue.int(m.uncompressed_bytes),
        "query_seconds": MetadataValue.float(m.query_seconds),
        "window_start": MetadataValue.text(m.window["start"]),
        "window_end": MetadataValue.text(m.window["end"]),
        "sha256": MetadataValue.text(m.sha256 or ""),
    }
