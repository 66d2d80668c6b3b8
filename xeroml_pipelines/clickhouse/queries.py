"""The SQL of an export: a table's lines of a window (or a range), in the file's order, and the
recount of a window from the very same query."""

from __future__ import annotations

from xeroml_pipelines.clickhouse.lines import Shape, cleaned, invalid_utf8_count, payload, settings
from xeroml_pipelines.clickhouse.selection import export_sort_key, latest_in_window_filter, qualified, window_column, window_index
from xeroml_pipelines.clickhouse.sessions import sessions_query
from xeroml_pipelines.tables import SOURCES
from xeroml_pipelines.windows import Mode


def records_query(
    table_name: str, database: str, mode: Mode, block_rows: int, exclude: frozenset[str] = frozenset(), shape: Shape = "lines"
) -> str:
    """The records of one window, in the file's line order.

    Each row is `_window_index` (its partition), `_row_hash` (for the partition's fingerprint),
    `_tombstone`, `_invalid_utf8`, then `_line`, the record's JSON line as ClickHouse writes it,
    or (`columns`) the record's typed columns (see `lines.payload`).
    The lines are formatted below the ORDER BY, on every reading thread, before the merge into
    one ordered stream; reading follows the table's sort key, so the ORDER BY is a merge, not a sort.
    Columns in `exclude` are neither read into the line nor counted; computed columns (latency)
    follow the stored ones.
    """
    table = SOURCES[table_name]
    stored = [(c.name, c.type) for c in table.columns if c.name not in exclude]
    computed = [c for c in table.computed if c.name not in exclude]
    columns = [*stored, *((c.name, c.type) for c in computed)]
    derived = "".join(f",\n        {c.expression} AS `{c.name}`" for c in computed)
    keys = export_sort_key(table)
    key_names = [f"_k{i}" for i in range(len(keys))]
    order = [*key_names[:-1], f"{key_names[-1]} DESC"]
    expressions, names = payload(shape, columns, table.tombstone_columns)
    return f"""SELECT _window_index, _row_hash, _tombstone, _invalid_utf8, {names}
FROM (
    SELECT _window_index, _row_hash, _tombstone, _invalid_utf8, {", ".join(key_names)},
        {expressions}
    FROM (
        SELECT
        {window_index(window_column(table, mode))} AS _window_index,
        cityHash64(`id`, `event_ts`) AS _row_hash,
        `is_deleted` AS _tombstone,
        {invalid_utf8_count(stored)} AS _invalid_utf8,
        {", ".join(f"{k} AS _k{i}" for i, k in enumerate(keys))},
        {cleaned(stored)}{derived}
        FROM {qualified(database, table.name)}
        WHERE {latest_in_window_filter(table, database, mode)}
    )
)
ORDER BY {", ".join(order)}
LIMIT 1 BY _k{keys.index("id")}
{settings(block_rows)}"""


def query_for(
    table_name: str, database: str, mode: Mode, block_rows: int, exclude: frozenset[str] = frozenset(), shape: Shape = "lines"
) -> str:
    if table_name == "sessions":
        return sessions_query(database, mode, block_rows, exclude, shape)
    return records_query(table_name, database, mode, block_rows, exclude, shape)


def fingerprint_query(table_name: str, database: str, mode: Mode) -> str:
    """Per partition of a window (range): rows and the XOR of their `_row_hash`, from the very
    query an export runs, so a manifest's fingerprint and a recount can only differ if the data did.
    (ClickHouse prunes the unused `_line`: nothing is formatted.)"""
    body, pinned = query_for(table_name, database, mode, 65_536).rsplit("\nSETTINGS", 1)
    return (
        "SELECT _window_index, count() AS rows, groupBitXor(_row_hash) AS fingerprint "
        f"FROM ({body}) GROUP BY _window_index ORDER BY _window_index\nSETTINGS{pinned}"
    )
