"""One partition's data object and manifest: the commit protocol.

1. stream the partition's file (its lines or Parquet row groups, as its format encodes them) into
   a staged upload (nothing visible at the final key yet);
2. check what was staged against what was written: its size, and the MD5 of each part, block or
   object as the provider reports it (the sha256 of the stored bytes goes to the manifest);
3. under the partition's lock: publish the object (or, for zero rows, remove any earlier one),
   remove an earlier object under another name (compression changed), then write the manifest.
A failure before 3 aborts the upload and leaves the previous object and manifest as they were.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from xeroml_pipelines.destinations.base import Destination, StagedUpload
from xeroml_pipelines.export.cutting import Chunk
from xeroml_pipelines.export.formats import Format, empty_file
from xeroml_pipelines.export.layout import Layout
from xeroml_pipelines.export.manifest import Manifest, read_manifest
from xeroml_pipelines.export.stream import ExportStream
from xeroml_pipelines.windows import Window

# The sha256 of a large piece runs on its own thread while the piece is written (both release
# the GIL): the writing thread is the export's slowest stage, and hashing was a third of it.
_HASHING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="xeroml-sha256")
_HASH_APART_BYTES = 1 << 20


def _utc(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


class QueryClock:
    """When the query of a group of partitions started, and how long it has run."""

    def __init__(self) -> None:
        self.started_at = datetime.now(UTC)
        self._t0 = time.perf_counter()

    @property
    def seconds(self) -> float:
        return round(time.perf_counter() - self._t0, 3)


class PartitionWriter:
    """One partition's object: compressed, hashed and counted as it streams, then committed."""

    def __init__(self, destination: Destination, layout: Layout, stream: ExportStream, window: Window, fmt: Format) -> None:
        self.destination, self.layout, self.stream, self.window, self.format = destination, layout, stream, window, fmt
        self.data_key = layout.data_key(stream.table, window)
        self.manifest_key = layout.manifest_key(stream.table, window)
        self._encoder = fmt.encoder(self._put)
        self._digest = hashlib.sha256()
        self._upload: StagedUpload | None = None
        self.rows = self.tombstones = self.invalid_utf8 = self.stored = self.fingerprint = 0

    @property
    def partition(self) -> str:
        return self.window.partition

    def _put(self, data: bytes | memoryview) -> None:
        if data:
            if self._upload is None:
                self._upload = self.destination.open_upload(self.data_key)
            if len(data) < _HASH_APART_BYTES:
                self._upload.write(data)
                self._digest.update(data)
            else:
                hashed = _HASHING.submit(self._digest.update, data)
                try:
                    self._upload.write(data)
                finally:
                    hashed.result()  # the piece is not used after this call returns
            self.stored += len(data)

    def add(self, chunk: Chunk) -> None:
        self.rows += chunk.rows
        self.tombstones += chunk.tombstones
        self.invalid_utf8 += chunk.invalid_utf8
        self.fingerprint ^= chunk.fingerprint
        self._encoder.add(chunk)

    def _empty(self, key: str) -> Callable[[], bytes]:
        """What replaces the object at `key` if it may not be deleted, made only then."""
        return lambda: empty_file(key, self.stream.table, self.stream.exclude)

    def abort(self) -> None:
        if self._upload is not None:
            self._upload.abort()
            self._upload = None

    def commit(self, clock: QueryClock, run_id: str | None) -> Manifest:
        dest = self.destination
        try:
            if self.rows:
                self._encoder.finish()
            with dest.partition_lock(self.manifest_key):
                previous = read_manifest(dest, self.manifest_key)
                if self._upload is not None:
                    self._upload.commit(self.stored)
                    self._upload = None
                else:
                    # Zero rows: a file from an earlier run of this window would now be a duplicate.
                    dest.remove(self.data_key, self._empty(self.data_key))
                object_key = self.data_key if self.rows else None
                if previous and previous.object_key and previous.object_key != object_key:
                    dest.remove(previous.object_key, self._empty(previous.object_key))
                manifest = self._manifest(object_key, clock, run_id)
                dest.write_small(self.manifest_key, manifest.model_dump_json(indent=2).encode())
            return manifest
        finally:
            self.abort()

    def _manifest(self, object_key: str | None, clock: QueryClock, run_id: str | None) -> Manifest:
        return Manifest(
            export=self.stream.export_name,
            project_id=self.stream.project_id,
            table=self.stream.table,
            partition=self.partition,
            mode=self.stream.mode,
            window=self.window.as_dict(),
            object_key=object_key,
            uri=self.destination.uri(self.data_key) if self.rows else None,
            file_format=self.layout.file_format,
            compression=self.layout.compression,
            rows=self.rows,
            tombstones=self.tombstones,
            invalid_utf8=self.invalid_utf8,
            bytes=self.stored,
            uncompressed_bytes=self._encoder.raw,
            sha256=self._digest.hexdigest() if self.rows else None,
            fingerprint=f"{self.fingerprint:016x}",
            query_started_at=_utc(clock.started_at),
            query_seconds=clock.seconds,
            exported_at=_utc(datetime.now(UTC)),
            run_id=run_id,
            schema_version=self.stream.schema_version,
            excluded=sorted(self.stream.exclude),
            parquet_schema=self.format.schema_fingerprint,
        )
