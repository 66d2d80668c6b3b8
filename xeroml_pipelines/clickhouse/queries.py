"""The SQL of an export: a table's lines of a window (or a range), in the file's order, and the
recount of a window from the very same query."""

from __future__ import annotations

from xeroml_pipelines.sql.lines import Shape
from xeroml_pipelines.tables import exported_table
from xeroml_pipelines.windows import Mode


def records_query(
    table_name: str, database: str, mode: Mode, block_rows: int, exclude: frozenset[str] = frozenset(), shape: Shape = "lines"
) -> str:
    """The records of one window (range), in the file's line order.

    Each row is `_window_index` (its partition), `_project_index` (its project's position in the
    `project_ids` parameter), `_row_hash` (for the partition's fingerprint),
    `_tombstone`, `_invalid_utf8`, then `_line`, the record's JSON line as ClickHouse writes it,
    or (`columns`) the record's typed columns (see `sql.lines.payload`). Columns in `exclude`
    are left out.
    """
    return exported_table(table_name).query(database, mode, block_rows, exclude, shape)


def fingerprint_query(table_name: str, database: str, mode: Mode) -> str:
    """Per partition of a window (range): rows and the XOR of their `_row_hash`, from the very
    query an export runs, so a manifest's fingerprint and a recount can only differ if the data did.
    (ClickHouse prunes the unused `_line`: nothing is formatted.)"""
    body, pinned = records_query(table_name, database, mode, 65_536).rsplit("\nSETTINGS", 1)
    return (
        "SELECT _window_index, count() AS rows, groupBitXor(_row_hash) AS fingerprint "
        f"FROM ({body}) GROUP BY _window_index ORDER BY _window_index\nSETTINGS{pinned}"
    )
