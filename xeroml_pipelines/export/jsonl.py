"""JSON lines files: ClickHouse writes each record's line; the file is the lines back to back,
optionally gzip or zstd compressed as they stream."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from xeroml_pipelines.export.compression import Compression, compressor
from xeroml_pipelines.export.cutting import Chunk, Sink
from xeroml_pipelines.sql.lines import Shape


def lines(column: pa.Array) -> memoryview:
    """The concatenated lines of a (sliced) string array, in place in Arrow's data buffer.

    ClickHouse ends every formatRow line with a newline and escapes newlines inside strings,
    so a row is exactly one line; checked per row, as a cheap guard against a format change.
    """
    _, offsets_buffer, data = column.buffers()
    width = np.int64 if pa.types.is_large_string(column.type) else np.int32
    all_offsets = cast(npt.NDArray[np.integer[Any]], np.frombuffer(offsets_buffer, dtype=width))
    offsets = all_offsets[column.offset : column.offset + len(column) + 1]
    body = np.frombuffer(data, dtype=np.uint8) if data is not None else np.empty(0, np.uint8)
    ends = offsets[1:]
    if np.any(ends <= offsets[:-1]) or np.any(body[ends - 1] != ord("\n")):
        raise RuntimeError("ClickHouse returned a row that is not one newline-terminated JSON line")
    return memoryview(data)[int(offsets[0]) : int(offsets[-1])]


class JsonLinesEncoder:
    def __init__(self, compression: Compression, sink: Sink) -> None:
        self._z = compressor(compression)
        self._sink = sink
        self.raw = 0  # the lines' bytes before compression

    def add(self, chunk: Chunk) -> None:
        data = cast(memoryview, chunk.data)
        self.raw += len(data)
        self._sink(self._z.compress(data))

    def finish(self) -> None:
        self._sink(self._z.flush())


class JsonLines:
    shape: Shape = "lines"
    buffer_bytes = 0  # compressors hold a few KB
    schema_fingerprint: str | None = None

    def __init__(self, compression: Compression) -> None:
        self.compression = compression

    def prepare(self, part: pa.RecordBatch) -> memoryview:
        return lines(part.column("_line"))

    def encoder(self, sink: Sink) -> JsonLinesEncoder:
        return JsonLinesEncoder(self.compression, sink)
