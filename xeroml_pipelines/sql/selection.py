"""Which version of which record belongs to a window (README, "Export semantics").

A record is its `(project_id, id)`; its latest version is the one with the greatest `event_ts`
(at equal `event_ts` a delete wins).
- incremental: a window holds every record whose latest version has `event_ts` in the window.
- snapshot: a window holds every record whose latest version has its event time in the window.
`FINAL` is not used: on a ReplacingMergeTree with `is_deleted` it drops deleted records, which
must be exported as tombstones, and it de-duplicates by the sort key, which contains the date,
not by `id`. All values travel as server-side query parameters (`{name:Type}`); only the
database name, a validated identifier, is spliced into the text.
"""

from __future__ import annotations

from xeroml_pipelines.sql.source_tables import SourceTable
from xeroml_pipelines.windows import Mode

PROJECT = "{project_id:String}"
WINDOW_START = "{window_start:DateTime64(3, 'UTC')}"
WINDOW_END = "{window_end:DateTime64(3, 'UTC')}"
WINDOW_MS = "{window_ms:UInt64}"


def qualified(database: str, name: str) -> str:
    return f"`{database}`.`{name}`"


def in_window(column: str) -> str:
    return f"`{column}` >= {WINDOW_START} AND `{column}` < {WINDOW_END}"


def window_column(table: SourceTable, mode: Mode) -> str:
    return "event_ts" if mode == "incremental" else table.event_time


def window_index(column: str) -> str:
    """The partition a row belongs to: whole windows (days or hours) since the epoch, in UTC."""
    return f"intDiv(toUnixTimestamp64Milli(`{column}`), {WINDOW_MS})"


def latest_in_window_filter(table: SourceTable, database: str, mode: Mode) -> str:
    """WHERE clause selecting the latest version rows of the records that belong to the window."""
    t = qualified(database, table.name)
    if mode == "incremental":
        # Only a record with a version in the window can belong to it, and a version older than
        # the window cannot be its latest: the latest versions are looked up for the window's own
        # ids, among versions from the window start on. Later history is read only as the `id`
        # and `event_ts` of those ids, so an old window costs what a recent one does.
        candidates = f"SELECT id FROM {t} WHERE project_id = {PROJECT} AND {in_window('event_ts')}"
        latest = (
            f"SELECT id, max(event_ts) FROM {t} WHERE project_id = {PROJECT} AND event_ts >= {WINDOW_START} "
            f"AND id IN ({candidates}) GROUP BY id"
        )
    else:
        candidates = f"SELECT id FROM {t} WHERE project_id = {PROJECT} AND {in_window(table.event_time)}"
        latest = f"SELECT id, max(event_ts) FROM {t} WHERE project_id = {PROJECT} AND id IN ({candidates}) GROUP BY id"
    return f"project_id = {PROJECT} AND {in_window(window_column(table, mode))} AND (id, event_ts) IN ({latest})"


def export_sort_key(table: SourceTable) -> tuple[str, ...]:
    """The order of a file's lines: the table's sort key without project_id (fixed by the
    export), then `is_deleted`, descending, so at equal key a tombstone sorts first and
    LIMIT 1 BY keeps it."""
    return (*table.order_by[1:], "is_deleted")


# A part's name is partition_minblock_maxblock_level[_mutation]; partition ids have no "_".
_PART_VERSION = "greatest(toUInt64OrZero(splitByChar('_', _part)[3]), toUInt64OrZero(splitByChar('_', _part)[5]))"


def new_rows(t: str, column: str = "id") -> str:
    """`column` of the rows of `t` added since a mark (`clickhouse.changes`): those in parts above
    the `since` versions of their partitions (a merge that took in a new block is read whole)."""
    return (
        f"SELECT {column} FROM {t} WHERE project_id = {PROJECT} "
        f"AND if(indexOf({{since_partitions:Array(String)}}, _partition_id) = 0, 1, "
        f"{_PART_VERSION} > {{since_versions:Array(UInt64)}}[indexOf({{since_partitions:Array(String)}}, _partition_id)])"
    )
