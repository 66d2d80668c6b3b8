"""The manifest: written after the data object, it is the commit record of one partition."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from xeroml_pipelines.destinations.base import Destination
from xeroml_pipelines.export.formats import FileFormat

MANIFEST_FORMAT = "xeroml-export-manifest/1"


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: str = MANIFEST_FORMAT
    export: str
    project_id: str
    table: str
    partition: str
    mode: str
    window: dict[str, str]
    object_key: str | None  # None: the window had no rows, so no data object exists
    uri: str | None
    file_format: FileFormat = "jsonl"  # manifests written before Parquet existed have none: jsonl
    compression: str  # jsonl: of the whole file; parquet: the codec of its column chunks
    rows: int
    tombstones: int
    invalid_utf8: int = 0  # string values whose bytes were not UTF-8, written with U+FFFD
    bytes: int  # as stored (after compression)
    uncompressed_bytes: int  # jsonl: the lines; parquet: the records in memory (ClickHouse's byteSize)
    sha256: str | None  # of the stored bytes
    fingerprint: str  # XOR of cityHash64(id, event_ts) over the lines: what a recount in ClickHouse compares
    query_started_at: str
    query_seconds: float
    exported_at: str
    run_id: str | None = None
    # The fields of the file's lines: a changed field selection is a new schema version.
    # (Manifests written before field selection existed have neither.)
    schema_version: str | None = None
    excluded: list[str] = []
    parquet_schema: str | None = None  # fingerprint of a Parquet file's schema: names, types, nullability


def read_manifest(destination: Destination, key: str) -> Manifest | None:
    """The manifest at `key`, or None if the partition was never exported."""
    try:
        return Manifest.model_validate_json(destination.read_bytes(key))
    except FileNotFoundError:
        return None
