"""Arrow batches of ClickHouse-formatted lines -> NDJSON chunks, one per batch.

ClickHouse writes each record's JSON line itself (see `clickhouse.queries`); an Arrow string
column keeps all of a batch's lines back to back in one buffer, so a partition's bytes are one
slice of it. Python never touches a row: counts, the fingerprint and the cuts are columnar.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class Chunk:
    bucket: int  # the partition these lines belong to (see `Window.bucket`)
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
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64 if pa.types.is_large_string(lines.type) else np.int32)
    offsets = offsets[lines.offset : lines.offset + len(lines) + 1]
    body = np.frombuffer(data, dtype=np.uint8) if data is not None else np.empty(0, np.uint8)
    ends = offsets[1:]
    if np.any(ends <= offsets[:-1]) or np.any(body[ends - 1] != ord("\n")):
        raise RuntimeError("ClickHouse returned a row that is not one newline-terminated JSON line")
    return memoryview(data)[int(offsets[0]) : int(offsets[-1])]


def serialize(batches: Iterable[pa.RecordBatch]) -> Iterator[Chunk]:
    for batch in batches:
        if batch.num_rows == 0:
            continue
        bounds = pc.min_max(batch.column("_bucket")).as_py()
        if bounds["min"] != bounds["max"]:
            # one query per partition: a batch never spans two
            raise RuntimeError(f"a ClickHouse block mixes partition buckets {bounds['min']}..{bounds['max']}")
        hashes = pl.from_arrow(batch.column("_row_hash"))
        assert isinstance(hashes, pl.Series)
        yield Chunk(
            bucket=int(bounds["min"]),
            data=_lines(batch.column("_line")),
            rows=batch.num_rows,
            tombstones=int(pc.sum(batch.column("_tombstone")).as_py() or 0),
            invalid_utf8=int(pc.sum(batch.column("_invalid_utf8")).as_py() or 0),
            fingerprint=int(hashes.bitwise_xor() or 0),
        )
