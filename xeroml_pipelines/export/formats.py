"""The file formats of an export: what the query returns for them and how a file is encoded."""

from __future__ import annotations

from typing import Literal, Protocol, cast

import pyarrow as pa

from xeroml_pipelines.export.compression import Compression
from xeroml_pipelines.export.cutting import Chunk, Sink
from xeroml_pipelines.export.jsonl import JsonLines
from xeroml_pipelines.export.parquet import Parquet, ParquetCodec
from xeroml_pipelines.sql.lines import Shape

FileFormat = Literal["jsonl", "parquet"]
# jsonl: how the whole file is compressed (none, gzip, zstd); parquet: the codec of its column
# chunks, which may also be snappy.
Codec = ParquetCodec


class Encoder(Protocol):
    raw: int  # bytes before encoding and compression

    def add(self, chunk: Chunk) -> None: ...

    def finish(self) -> None:
        """Send the rest of the file to the sink (only called when the file has rows)."""


class Format(Protocol):
    @property
    def shape(self) -> Shape: ...

    @property
    def buffer_bytes(self) -> int:
        """What an open file holds in memory at most, besides its upload's buffer."""

    @property
    def schema_fingerprint(self) -> str | None: ...

    def prepare(self, part: pa.RecordBatch) -> object: ...

    def encoder(self, sink: Sink) -> Encoder: ...


def empty_file(key: str, table: str, exclude: frozenset[str]) -> bytes:
    """A file without records, of the format the object at `key` has: what replaces a stale
    object that may not be deleted."""
    return Parquet(table, exclude, "zstd").empty_file() if key.endswith(".parquet") else b""


def format_for(file_format: FileFormat, codec: Codec, table: str, exclude: frozenset[str]) -> Format:
    if file_format == "parquet":
        return Parquet(table, exclude, codec)
    return JsonLines(cast(Compression, codec))
