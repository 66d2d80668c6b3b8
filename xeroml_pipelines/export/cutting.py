"""Arrow batches of ClickHouse-formatted lines, cut into chunks: one per batch and partition.

ClickHouse writes each record's JSON line itself (see `clickhouse.queries`); an Arrow string
column keeps all of a batch's lines back to back in one buffer, so a partition's bytes are one
slice of it. Python never touches a row: counts, the fingerprint and the cuts are columnar.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class Chunk:
    window_index: int  # the partition these lines belong to (see `Window.index`)
    data: memoryview  # the lines, in place in the Arrow batch's buffer
    rows: int
    tombstones: int
    invalid_utf8: int  # string values written with U+FFFD because their bytes were not UTF-8
    fingerprint: int  # XOR of the rows' cityHash64(id, event_ts), as ClickHouse computes it


def _lines(lines: pa.Array) -> memoryview:
    """The concatenated lines of a (sliced) string array, in place in Arrow's data buffer.

    ClickHouse ends every formatRow line with a newline and escapes newlines inside strings,
    so a row is exactly one line; checked per row, as a cheap guard against a format change.
    """
    _, offsets_buffer, data = lines.buffers()
    width = np.int64 if pa.types.is_large_string(lines.type) else np.int32
    all_offsets = cast(npt.NDArray[np.integer[Any]], np.frombuffer(offsets_buffer, dtype=width))
    offsets = all_offsets[lines.offset : lines.offset + len(lines) + 1]
    body = np.frombuffer(data, dtype=np.uint8) if data is not None else np.empty(0, np.uint8)
    ends = offsets[1:]
    if np.any(ends <= offsets[:-1]) or np.any(body[ends - 1] != ord("\n")):
        raise RuntimeError("ClickHouse returned a row that is not one newline-terminated JSON line")
    return memoryview(data)[int(offsets[0]) : int(offsets[-1])]


def _total(column: pa.Array) -> int:
    return int(cast(int | None, pc.sum(column).as_py()) or 0)


def _by_partition(batch: pa.RecordBatch) -> Iterator[tuple[int, pa.RecordBatch]]:
    """The batch's rows per partition, each in the order they came (the file's order). Rows of
    one query over several partitions come in key order, their partitions interleaved."""
    indexes = batch.column("_window_index")
    bounds = pc.min_max(indexes).as_py()
    if bounds["min"] == bounds["max"]:  # one partition: the usual case, no copy
        yield bounds["min"], batch
        return
    ordered = batch.take(pc.sort_indices(indexes))  # a stable sort: key order kept within a partition
    encoded = pc.run_end_encode(ordered.column("_window_index"))
    start = 0
    for index, end in zip(encoded.values.to_pylist(), encoded.run_ends.to_pylist(), strict=True):
        yield index, ordered.slice(start, end - start)
        start = end


def cut_by_partition(batches: Iterable[pa.RecordBatch]) -> Iterator[Chunk]:
    """Each batch's lines and counts per partition; the lines stay in the batch's buffer."""
    for batch in batches:
        if batch.num_rows == 0:
            continue
        for index, part in _by_partition(batch):
            hashes = pl.from_arrow(part.column("_row_hash"))
            assert isinstance(hashes, pl.Series)
            yield Chunk(
                window_index=int(index),
                data=_lines(part.column("_line")),
                rows=part.num_rows,
                tombstones=_total(part.column("_tombstone")),
                invalid_utf8=_total(part.column("_invalid_utf8")),
                fingerprint=int(cast(int | None, hashes.bitwise_xor()) or 0),
            )
