"""Arrow batches of a query's records, cut into chunks: one per batch, project and partition.

A query over several partitions returns their rows interleaved in key order (a query over
several projects, each project's rows together); each row's `_project_index` and
`_window_index` name its file. The counts, the fingerprint and the cuts are columnar:
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
    project_index: int  # their project's position in the query's list
    data: object  # what the format's `prepare` made of the rows: JSON lines, typed Arrow columns
    rows: int
    tombstones: int
    invalid_utf8: int  # string values written with U+FFFD because their bytes were not UTF-8
    fingerprint: int  # XOR of the rows' cityHash64(id, event_ts), as ClickHouse computes it


def _total(column: pa.Array) -> int:
    return int(cast(int | None, pc.sum(column).as_py()) or 0)


# A file is its project and partition: one key, the project above the window's 32 bits (whole
# hours since the epoch stay far below 2**32).
_PROJECT_SHIFT = 1 << 32


def _by_file(batch: pa.RecordBatch) -> Iterator[tuple[int, pa.RecordBatch]]:
    """The batch's rows per file (project and partition), each in the order they came (the
    file's order). Rows of one query over several partitions come in key order, their
    partitions interleaved."""
    projects = batch.column("_project_index")
    windows = batch.column("_window_index")
    project_bounds = pc.min_max(projects).as_py()
    window_bounds = pc.min_max(windows).as_py()
    if project_bounds["min"] == project_bounds["max"] and window_bounds["min"] == window_bounds["max"]:
        yield project_bounds["min"] * _PROJECT_SHIFT + window_bounds["min"], batch  # the usual case: no copy
        return
    keys = pc.add(pc.multiply(projects.cast(pa.uint64()), _PROJECT_SHIFT), windows.cast(pa.uint64()))
    order = pc.sort_indices(keys)  # a stable sort: key order kept within a file
    ordered, keys = batch.take(order), keys.take(order)
    encoded = pc.run_end_encode(keys)
    start = 0
    for key, end in zip(encoded.values.to_pylist(), encoded.run_ends.to_pylist(), strict=True):
        yield key, ordered.slice(start, end - start)
        start = end


def cut_by_partition(batches: Iterable[pa.RecordBatch], prepare: Callable[[pa.RecordBatch], object]) -> Iterator[Chunk]:
    """Each batch's rows and counts per file, the rows as `prepare` makes them."""
    for batch in batches:
        if batch.num_rows == 0:
            continue
        for key, part in _by_file(batch):
            hashes = pl.from_arrow(part.column("_row_hash"))
            assert isinstance(hashes, pl.Series)
            project, window = divmod(int(key), _PROJECT_SHIFT)
            yield Chunk(
                window_index=window,
                project_index=project,
                data=prepare(part),
                rows=part.num_rows,
                tombstones=_total(part.column("_tombstone")),
                invalid_utf8=_total(part.column("_invalid_utf8")),
                fingerprint=int(cast(int | None, hashes.bitwise_xor()) or 0),
            )
