"""Arrow batches -> NDJSON bytes, columnar: Polars serializes, Python never touches a row."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from io import BytesIO

import polars as pl
import pyarrow as pa

# RFC 3339, UTC, fixed millisecond precision: every timestamp has the same shape.
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%.3fZ"


@dataclass(frozen=True)
class Chunk:
    bucket: int  # the partition these lines belong to (see `Window.bucket`)
    data: bytes
    rows: int
    tombstones: int
    fingerprint: int  # XOR of the rows' cityHash64(id, event_ts), as ClickHouse computes it


def _frame(df: pl.DataFrame, tombstone_columns: frozenset[str]) -> tuple[pl.DataFrame, int]:
    exprs = []
    tombstones = int(df["is_deleted"].sum())
    for name, dtype in df.schema.items():
        expr = pl.col(name)
        if isinstance(dtype, pl.Datetime):
            expr = expr.dt.convert_time_zone("UTC").dt.to_string(TIMESTAMP_FORMAT)
        if tombstones and name not in tombstone_columns:
            # A tombstone must not carry the deleted content (prompts, outputs, user ids).
            expr = pl.when(pl.col("is_deleted")).then(None).otherwise(expr)
        exprs.append(expr.alias(name))
    return df.select(exprs), tombstones


def serialize(batches: Iterable[pa.RecordBatch], tombstone_columns: Iterable[str]) -> Iterator[Chunk]:
    """One chunk per partition run within each batch; rows arrive ordered by partition."""
    keep = frozenset(tombstone_columns)
    buffer = BytesIO()
    for batch in batches:
        if batch.num_rows == 0:
            continue
        whole = pl.from_arrow(batch)
        assert isinstance(whole, pl.DataFrame)
        # rows arrive ordered by partition: a batch of one window (the usual case) is not split
        buckets = whole["_bucket"]
        parts = [whole] if buckets[0] == buckets[-1] else whole.partition_by("_bucket", maintain_order=True)
        for part in parts:
            bucket = int(part["_bucket"][0])
            fingerprint = int(part.select(pl.col("_row_hash").bitwise_xor()).item())
            df, tombstones = _frame(part.drop("_bucket", "_row_hash"), keep)
            buffer.seek(0)
            buffer.truncate()
            df.write_ndjson(buffer)
            data = buffer.getvalue()
            # JSON escapes newlines inside strings, so lines == rows; anything else is a serializer bug.
            lines = data.count(b"\n")
            if lines != df.height:
                raise RuntimeError(f"serializer wrote {lines} lines for {df.height} rows")
            yield Chunk(bucket, data, df.height, tombstones, fingerprint)
