"""Reading an export's Parquet files back the ways its users do (pyarrow, Polars, DuckDB), as
records comparable field by field with the JSON lines of the same partition."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq


def _as_json(value: Any, type_: pa.DataType) -> Any:
    """A value as the JSON export writes it."""
    if value is None:
        return None
    if pa.types.is_map(type_):
        # DuckDB gives a dict, pyarrow (key, value) tuples, Polars {"key", "value"} structs
        pairs = value.items() if isinstance(value, dict) else (tuple(p.values()) if isinstance(p, dict) else p for p in value)
        return {k: _as_json(v, type_.item_type) for k, v in pairs}
    if pa.types.is_list(type_):
        return [_as_json(v, type_.value_type) for v in value]
    if isinstance(value, datetime):
        assert value.utcoffset() is not None and value.utcoffset().total_seconds() == 0, value
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    if isinstance(value, Decimal):
        return float(value)
    return value


def _records(rows: list[dict[str, Any]], schema: pa.Schema) -> list[dict[str, Any]]:
    return [{f.name: _as_json(row[f.name], f.type) for f in schema} for row in rows]


def with_pyarrow(path: Path) -> list[dict[str, Any]]:
    table = pq.read_table(path)
    return _records(table.to_pylist(), table.schema)


def with_polars(path: Path) -> list[dict[str, Any]]:
    return _records(pl.read_parquet(path).to_dicts(), pq.read_schema(path))


def with_duckdb(path: Path) -> list[dict[str, Any]]:
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        result = con.execute("SELECT * FROM read_parquet(?)", [str(path)])
        names = [d[0] for d in result.description]
        rows = [dict(zip(names, row, strict=True)) for row in result.fetchall()]
    return _records(rows, pq.read_schema(path))
