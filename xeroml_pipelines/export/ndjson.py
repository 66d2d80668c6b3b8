"""Arrow batches of ClickHouse-formatted lines -> NDJSON chunks, one per partition run.

ClickHouse writes each record's JSON line itself (see `clickhouse.queries`); an Arrow string
column keeps all of a batch's lines back to back in one buffer, so a partition's bytes are one
slice of it. Python never touches a row: counts, the fingerprint and the cuts are columnar.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class Chunk:
    bucket: int  # the partition these lines belong to (see `Window.bucket`)
    data: bytes
    rows: int
    tombstones: int
    invalid_utf8: int  # string values written with U+FFFD because their bytes were not UTF-8
    fingerprint: int  # XOR of the rows' cityHash64(id, event_ts), as ClickHouse computes it


def _line_bytes(lines: pa.Array) -> bytes:
    """The concatenated lines of a (sliced) string array: one copy out of Arrow's data buffer."""
    _, offsets, data = lines.buffers()
    width = 8 if pa.types.is_large_string(lines.type) else 4
    at = memoryview(offsets).cast("q" if width == 8 else "i")
    start, end = at[lines.offset], at[lines.offset + len(lines)]
    return data[start:end].to_pybytes() if data is not None else b""


def _runs(buckets: pa.Array) -> list[tuple[int, int, int]]:
    """(bucket, start, end) of each run of equal buckets; rows arrive ordered by partition."""
    if buckets[0] == buckets[-1]:  # a batch of one window, the usual case
        return [(buckets[0].as_py(), 0, len(buckets))]
    encoded = pc.run_end_encode(buckets)
    ends = encoded.run_ends.to_pylist()
    values = encoded.values.to_pylist()
    return [(v, s, e) for v, s, e in zip(values, [0, *ends[:-1]], ends)]


def serialize(batches: Iterable[pa.RecordBatch]) -> Iterator[Chunk]:
    for batch in batches:
        if batch.num_rows == 0:
            continue
        for bucket, start, end in _runs(batch.column("_bucket")):
            part = batch.slice(start, end - start)
            data = _line_bytes(part.column("_line"))
            rows = part.num_rows
            # JSON escapes newlines inside strings, so lines == rows; anything else is a format bug.
            lines = data.count(b"\n")
            if lines != rows or not data.endswith(b"\n"):
                raise RuntimeError(f"ClickHouse wrote {lines} lines for {rows} rows")
            hashes = pl.from_arrow(part.column("_row_hash"))
            assert isinstance(hashes, pl.Series)
            yield Chunk(
                bucket=int(bucket),
                data=data,
                rows=rows,
                tombstones=int(pc.sum(part.column("_tombstone")).as_py() or 0),
                invalid_utf8=int(pc.sum(part.column("_invalid_utf8")).as_py() or 0),
                fingerprint=int(hashes.bitwise_xor() or 0),
            )
