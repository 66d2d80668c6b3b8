"""What an exported table is: one spec, from which its line model, its query, its change
detection and every schema derived from the model (JSON Schema, Parquet, the warehouses') follow.

Every field but identity, times and the delete flag is nullable in the model: a tombstone line
carries only its `tombstone_columns`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from xeroml_pipelines.sql.lines import Shape
from xeroml_pipelines.sql.source_tables import Column
from xeroml_pipelines.windows import Mode

LargeText = Annotated[str, "large"]  # prompts and completions: may exceed Redshift's 64 KB VARCHAR
# ClickHouse's Decimal64(12): a number in JSON, DECIMAL(18, 12) in Parquet, exact either way.
Cost = Annotated[float, "decimal(18,12)"]

# (database, mode, block_rows, exclude, shape) -> the SQL of a window's (range's) records, in file
# order, each row `_window_index` (its partition), `_row_hash` (the partition's fingerprint XORs
# them), `_tombstone`, `_invalid_utf8`, then the payload of `sql.lines.payload`; `exclude`: the
# columns a field selection leaves out.
QueryBuilder = Callable[[str, Mode, int, frozenset[str], Shape], str]
# (database, mode, source) -> SQL selecting the window indexes that rows of `source` added since
# a mark may have changed (parameters: `project_id`, the window span, `since_partitions` and
# `since_versions`; see `clickhouse.changes`).
ChangesBuilder = Callable[[str, Mode, str], str]


class Line(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Computed:
    """An exported column that is not stored: derived per row from the stored ones."""

    name: str
    type: str  # the ClickHouse type of the value
    expression: str  # over the stored columns
    description: str | None = None

    def as_column(self) -> Column:
        return Column(self.name, self.type, description=self.description)


@dataclass(frozen=True, eq=False)
class ExportedTable:
    name: str
    title: str  # the line model's name
    description: str  # of the asset and of the line model
    columns: tuple[Column, ...]  # the records' own columns, in file order
    computed: tuple[Computed, ...]  # after `columns`, in this order
    tombstone_columns: tuple[str, ...]  # what a tombstone keeps; every other column is null
    sources: tuple[str, ...]  # the ClickHouse tables its query reads
    change_sources: tuple[str, ...]  # those whose new rows can change its partitions
    snapshot_column: str | None  # the exported column a snapshot window is on, if one is
    query: QueryBuilder
    changed_windows: ChangesBuilder
    joined: tuple[Column, ...] = ()  # from another source table, after `computed`
    default: bool = True  # exported when an export does not list its tables

    @property
    def all_columns(self) -> tuple[Column, ...]:
        return (*self.columns, *(c.as_column() for c in self.computed), *self.joined)

    @property
    def column_names(self) -> tuple[str, ...]:
        """The columns of a line, in file order."""
        return tuple(c.name for c in self.all_columns)

    def required_columns(self, mode: Mode) -> tuple[str, ...]:
        """What every line keeps, whatever a field selection excludes: the record's identity, its
        version, the delete flag, and the column its window is on."""
        required: tuple[str, ...] = ("id", "project_id", "event_ts", "is_deleted")
        if mode == "snapshot" and self.snapshot_column:
            required += (self.snapshot_column,)
        return required

    @cached_property
    def model(self) -> type[Line]:
        """The pydantic model of a line: the files' contract."""
        fields: dict[str, Any] = {}
        for column in self.all_columns:
            annotation, nullable = python_type(column)
            required = column.name in self.tombstone_columns and not nullable
            fields[column.name] = (
                annotation if required else annotation | None,
                Field(description=column.description) if required else Field(default=None, description=column.description),
            )
        return create_model(self.title, __base__=Line, __doc__=self.description, **fields)


_WRAPPER = re.compile(r"^(Nullable|LowCardinality)\((.*)\)$")
_SCALARS: dict[str, object] = {
    "String": str,
    "Bool": bool,
    "UInt8": int,
    "UInt16": int,
    "UInt32": int,
    "UInt64": int,
    "Int64": int,
    "Float64": float,
    "Decimal64(12)": Cost,
}


def python_type(column: Column) -> tuple[Any, bool]:
    """(annotation, nullable in ClickHouse) of a column's value in a line."""
    if column.name == "is_deleted":  # written as a boolean
        return bool, False
    return _python(column.type, column.large)


def _python(ch_type: str, large: bool = False) -> tuple[Any, bool]:
    nullable = False
    while match := _WRAPPER.match(ch_type):
        nullable = nullable or match.group(1) == "Nullable"
        ch_type = match.group(2)
    if ch_type.startswith("DateTime64"):
        return datetime, nullable
    if ch_type.startswith("Map("):
        value = ch_type[len("Map(") : -1].rsplit(",", 1)[1].strip()
        return dict[str, _python(value)[0]], nullable  # type: ignore[misc]
    if ch_type.startswith("Array("):
        return list[_python(ch_type[len("Array(") : -1])[0]], nullable  # type: ignore[misc]
    if ch_type == "String" and large:
        return LargeText, nullable
    return _SCALARS[ch_type], nullable
