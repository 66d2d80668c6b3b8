"""Parquet files: the query's typed columns, written by Arrow's Parquet writer as they stream.

The file's schema comes from the same pydantic model as the JSON schema (`schemas.py`):
timestamps as TIMESTAMP(MILLIS, UTC), costs as DECIMAL(18, 12), maps as MAP<string, …>, arrays
as LIST, `is_deleted` as a boolean; a tombstone has every content field null, as in JSON.

Row groups are cut by the rows themselves, never by where ClickHouse's batches end, so a re-run
writes the same bytes: a group closes at `ROW_GROUP_ROWS` rows, or before the row that would
take its records past `ROW_GROUP_BYTES` in memory (ClickHouse's `byteSize` of the row).
"""

from __future__ import annotations

import hashlib
import typing
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from xeroml_pipelines import schemas
from xeroml_pipelines.export.cutting import Chunk, Sink
from xeroml_pipelines.sql.lines import Shape
from xeroml_pipelines.tables import exported_table

ParquetCodec = Literal["none", "snappy", "gzip", "zstd"]

# DuckDB's own row group (122,880 rows): readers scan a row group per thread, so a day's file
# of ~1M rows is read by all cores. The byte bound keeps a group of 3 KB observations (~11,000
# rows) and whatever a range run has open within the per-query memory budget (engine.py).
ROW_GROUP_ROWS = 122_880
ROW_GROUP_BYTES = 32 * 1024 * 1024

_SCALARS: dict[type, pa.DataType] = {
    str: pa.string(),
    datetime: pa.timestamp("ms", tz="UTC"),
    bool: pa.bool_(),
    int: pa.int64(),
    float: pa.float64(),
}
_DECIMAL = pa.decimal128(18, 12)


def _arrow_type(annotation: object) -> pa.DataType:
    base, _, markers = schemas.unwrap(annotation)
    origin = typing.get_origin(base)
    if origin is dict:
        value = typing.get_args(base)[1]
        # usage counts are ClickHouse UInt64 values: unsigned, as in the source (JSON keeps them whole too)
        return pa.map_(pa.string(), pa.uint64() if value is int else _arrow_type(value))
    if origin is list:
        return pa.list_(_arrow_type(typing.get_args(base)[0]))
    if "decimal(18,12)" in markers:
        return _DECIMAL
    return _SCALARS[base]  # type: ignore[index]


def arrow_schema(table: str, exclude: frozenset[str] = frozenset()) -> pa.Schema:
    """The schema of a table's Parquet files under a field selection."""
    fields = schemas.columns(table, exclude)
    return pa.schema([pa.field(name, _arrow_type(annotation), nullable=nullable) for name, annotation, nullable in fields])


@dataclass(frozen=True)
class TypedRows:
    records: pa.RecordBatch  # in the file's schema, tombstones nulled
    sizes: npt.NDArray[np.uint64]  # each row's size in memory


def _null_where(column: pa.Array, dead: pa.Array) -> pa.Array:
    """`column` with nulls where `dead` is true. A flat column keeps its data buffers and gets a
    new validity bitmap: `if_else` would copy every prompt and completion of the batch."""
    keep = pc.invert(dead) if column.null_count == 0 else pc.and_(pc.is_valid(column), pc.invert(dead))
    if pa.types.is_nested(column.type) or column.offset or keep.offset:
        return pc.if_else(dead, pa.scalar(None, column.type), column)
    return pa.Array.from_buffers(column.type, len(column), [keep.buffers()[1], *column.buffers()[1:]])


class ParquetEncoder:
    """One file: rows gathered into row groups, each encoded and sent to the sink when it closes."""

    def __init__(self, schema: pa.Schema, codec: ParquetCodec, sink: Sink) -> None:
        self._schema, self._codec, self._sink = schema, codec, sink
        self._writer: Any = None  # opened with the first row group
        self._pending: list[pa.RecordBatch] = []
        self._rows = self._bytes = 0
        self.raw = 0  # the records' in-memory bytes

    def add(self, chunk: Chunk) -> None:
        rows = typing.cast(TypedRows, chunk.data)
        self.raw += int(rows.sizes.sum())
        start, n = 0, rows.records.num_rows
        while start < n:
            window = rows.sizes[start : start + ROW_GROUP_ROWS - self._rows]
            totals = self._bytes + np.cumsum(window, dtype=np.uint64)
            fit = int(np.searchsorted(totals, ROW_GROUP_BYTES, side="right"))
            if fit == 0 and self._rows == 0:
                fit = 1  # a row larger than a group is a group of its own
            if fit:
                self._pending.append(rows.records.slice(start, fit))
                self._rows += fit
                self._bytes = int(totals[fit - 1])
                start += fit
            if fit < len(window) or self._rows == ROW_GROUP_ROWS:
                self._close_group()

    def _close_group(self) -> None:
        if not self._pending:
            return
        if self._writer is None:
            self._writer = _writer(self._sink, self._schema, self._codec)
        self._writer.write_table(pa.Table.from_batches(self._pending, self._schema), row_group_size=self._rows)
        self._pending, self._rows, self._bytes = [], 0, 0

    def finish(self) -> None:
        self._close_group()
        if self._writer is not None:
            self._writer.close()  # the footer


def _writer(sink: Sink, schema: pa.Schema, codec: ParquetCodec) -> Any:
    import pyarrow.parquet as pq

    return pq.ParquetWriter(
        _SinkFile(sink),
        schema,
        compression=codec,
        version="2.6",
        data_page_version="1.0",  # read by every engine, Athena and BigQuery included
        store_decimal_as_integer=True,  # DECIMAL(18, 12) as INT64, not 16-byte binaries
        write_statistics=True,
    )


class _SinkFile:
    """The file object Arrow's writer writes to: every write goes on to the upload."""

    closed = False

    def __init__(self, sink: Sink) -> None:
        self._sink, self._position = sink, 0

    def write(self, data: bytes) -> int:
        self._sink(data)
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class Parquet:
    shape: Shape = "columns"
    buffer_bytes = ROW_GROUP_BYTES  # the open row group of each file

    def __init__(self, table: str, exclude: frozenset[str], codec: ParquetCodec) -> None:
        self.codec = codec
        self.schema = arrow_schema(table, exclude)
        kept = set(exported_table(table).tombstone_columns)
        self._nulled = [i for i, name in enumerate(self.schema.names) if name not in kept]

    @cached_property
    def schema_fingerprint(self) -> str:
        """Changes whenever a column's name, type or nullability does."""
        return hashlib.sha256(self.schema.to_string(show_schema_metadata=False).encode()).hexdigest()[:16]

    def prepare(self, part: pa.RecordBatch) -> TypedRows:
        records = part.select(self.schema.names).cast(self.schema)
        tombstones = part.column("_tombstone").cast(pa.bool_())
        if pc.any(tombstones).as_py():
            columns = list(records.columns)
            for i in self._nulled:
                columns[i] = _null_where(columns[i], tombstones)
            records = pa.RecordBatch.from_arrays(columns, schema=self.schema)
        sizes = part.column("_row_bytes").to_numpy(zero_copy_only=False).astype(np.uint64, copy=False)
        return TypedRows(records, sizes)

    def encoder(self, sink: Sink) -> ParquetEncoder:
        return ParquetEncoder(self.schema, self.codec, sink)

    def empty_file(self) -> bytes:
        """A valid Parquet file of zero rows: readers of `*.parquet` would fail on zero bytes."""
        parts: list[bytes] = []
        writer = _writer(lambda data: parts.append(bytes(data)), self.schema, self.codec)
        writer.close()
        return b"".join(parts)
