"""Arrow batches of a query's records, cut into chunks: one per batch and partition.

A query over several partitions returns their rows interleaved in key order; each row's
`_window_index` names its partition. The counts, the fingerprint and the cuts are columnar:
Python never touches a row. The file format turns each partition's rows into what its encoder
takes (`prepare`), on the cutting thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import cast

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

Sink = Callable[[bytes | memoryview], None]  # where an encoder's output goes: the partition's upload


@dataclass(frozen=True)
class Chunk:
    window_index: int  # the partition these rows belong to (see `Window.index`)
    data: object  # what the format's `prepare` made of the rows: JSON lines, typed Arrow columns
    rows: int
    tombstones: int
    invalid_utf8: int  # string values written with U+FFFD because their bytes were not UTF-8
    fingerprint: int  # XOR of the rows' cityHash64(id, event_ts), as ClickHouse computes it


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


def cut_by_partition(batches: Iterable[pa.RecordBatch], prepare: Callable[[pa.RecordBatch], object]) -> Iterator[Chunk]:
    """Each batch's rows and counts per partition, the rows as `prepare` makes them."""
    for batch in batches:
        if batch.num_rows == 0:
            continue
        for index, part in _by_partition(batch):
            hashes = pl.from_arrow(part.column("_row_hash"))
            assert isinstance(hashes, pl.Series)
            yield Chunk(
                window_index=int(index),
                data=prepare(part),
                rows=part.num_rows,
                tombstones=_total(part.column("_tombstone")),
                invalid_utf8=_total(part.column("_invalid_utf8")),
                fingerprint=int(cast(int | None, hashes.bitwise_xor()) or 0),
            )
