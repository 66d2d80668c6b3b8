"""What a downstream asset gets for an exported partition: where its data is, not the data."""

from __future__ import annotations

from pydantic import BaseModel

from xeroml_pipelines.export.formats import FileFormat
from xeroml_pipelines.export.manifest import Manifest


class ExportedPartition(BaseModel):
    partition: str
    window: dict[str, str]
    uri: str | None  # None: the partition had no rows and has no data object
    object_key: str | None
    manifest_uri: str
    rows: int
    bytes: int
    sha256: str | None
    file_format: FileFormat = "jsonl"
    compression: str
    excluded: list[str] = []  # the columns its file leaves out, as exported (the config may have changed since)

    @classmethod
    def of(cls, manifest: Manifest, manifest_uri: str) -> ExportedPartition:
        return cls(
            partition=manifest.partition,
            window=manifest.window,
            uri=manifest.uri,
            object_key=manifest.object_key,
            manifest_uri=manifest_uri,
            rows=manifest.rows,
            bytes=manifest.bytes,
            sha256=manifest.sha256,
            file_format=manifest.file_format,
            compression=manifest.compression,
            excluded=manifest.excluded,
        )
