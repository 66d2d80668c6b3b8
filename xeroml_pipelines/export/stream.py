"""What an export asset returns: which rows go into which partitions, and where they come from.

The asset decides *which* rows (table, mode, windows) and names their source; the IO manager
opens the source group by group and streams it batch by batch, so no partition is ever held in
memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from xeroml_pipelines.sql.lines import Shape
from xeroml_pipelines.tables import exported_table
from xeroml_pipelines.windows import Mode, Window


class BatchSource(Protocol):
    def open(self, windows: Sequence[Window], shape: Shape) -> AbstractContextManager[Iterator[pa.RecordBatch]]:
        """One query over consecutive windows: Arrow batches with `_window_index`, `_row_hash`,
        `_tombstone`, `_invalid_utf8`, then the record as `shape` asks (its JSON line, or its
        typed columns), in the file's order."""
        ...


@dataclass(frozen=True)
class ExportStream:
    """One or several consecutive partitions (a range backfill) of one table, one file each.
    How many partitions one `source.open` feeds is `engine.partitions_per_query`'s choice (how
    many files the destination can have open at once)."""

    export_name: str
    project_id: str
    table: str
    mode: Mode
    windows: tuple[Window, ...]  # in time order
    source: BatchSource
    exclude: frozenset[str] = frozenset()  # columns the source leaves out of the lines

    @property
    def columns(self) -> tuple[str, ...]:
        """The fields of each line, in order."""
        return tuple(c for c in exported_table(self.table).column_names if c not in self.exclude)

    @property
    def schema_version(self) -> str:
        """Changes whenever the fields of a line do (a field selection, a column XeroML adds)."""
        return hashlib.sha256(",".join(self.columns).encode()).hexdigest()[:16]
