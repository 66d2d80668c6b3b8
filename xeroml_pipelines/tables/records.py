"""An exported table that is one ClickHouse table's records: each record's latest version, as
stored, with the table's computed columns after the stored ones."""

from __future__ import annotations

from xeroml_pipelines.sql.lines import Shape, cleaned, invalid_utf8_count, payload, settings
from xeroml_pipelines.sql.selection import (
    PROJECT,
    export_sort_key,
    in_window,
    latest_in_window_filter,
    new_rows,
    project_index,
    qualified,
    window_column,
    window_index,
)
from xeroml_pipelines.sql.source_tables import SourceTable
from xeroml_pipelines.tables.spec import ChangesBuilder, Computed, ExportedTable, QueryBuilder
from xeroml_pipelines.windows import Mode


def records_table(source: SourceTable, title: str, description: str, computed: tuple[Computed, ...] = ()) -> ExportedTable:
    return ExportedTable(
        name=source.name,
        title=title,
        description=description,
        columns=source.columns,
        computed=computed,
        tombstone_columns=source.tombstone_columns,
        sources=(source.name,),
        change_sources=(source.name,),
        snapshot_column=source.event_time,
        query=_query(source, computed),
        changed_windows=_changes(source),
    )


def _query(table: SourceTable, computed: tuple[Computed, ...]) -> QueryBuilder:
    def build(database: str, mode: Mode, block_rows: int, exclude: frozenset[str], shape: Shape) -> str:
        """The lines are formatted below the ORDER BY, on every reading thread, before the merge
        into one ordered stream; reading follows the table's sort key, so the ORDER BY is a
        merge, not a sort. Columns in `exclude` are neither read into the line nor counted."""
        stored = [(c.name, c.type) for c in table.columns if c.name not in exclude]
        kept = [c for c in computed if c.name not in exclude]
        columns = [*stored, *((c.name, c.type) for c in kept)]
        derived = "".join(f",\n        {c.expression} AS `{c.name}`" for c in kept)
        keys = export_sort_key(table)
        key_names = [f"_k{i}" for i in range(len(keys))]
        order = [*key_names[:-1], f"{key_names[-1]} DESC"]
        expressions, names = payload(shape, columns, table.tombstone_columns)
        return f"""SELECT _window_index, _project_index, _row_hash, _tombstone, _invalid_utf8, {names}
FROM (
    SELECT _window_index, _project_index, _row_hash, _tombstone, _invalid_utf8, {", ".join(key_names)},
        {expressions}
    FROM (
        SELECT
        {window_index(window_column(table, mode))} AS _window_index,
        {project_index()} AS _project_index,
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
LIMIT 1 BY _k{keys.index("project_id")}, _k{keys.index("id")}
{settings(block_rows)}"""

    return build


def _changes(table: SourceTable) -> ChangesBuilder:
    def build(database: str, mode: Mode, source: str) -> str:
        """A new row's own window, and every window holding a version of its record (the new
        row may supersede it)."""
        t = qualified(database, table.name)
        column = window_column(table, mode)
        return (
            f"SELECT DISTINCT {window_index(column)} FROM {t} "
            f"WHERE project_id = {PROJECT} AND {in_window(column)} AND id IN ({new_rows(t)})"
        )

    return build
