"""Which version of which record belongs to a window (docs/guarantees.md, "Export semantics").

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

# An export query reads a set of projects (one for a configured export, a shard's due projects
# for the fleet); a record is its (project_id, id) and `_project_index` names its project.
PROJECTS = "{project_ids:Array(String)}"
IN_PROJECTS = f"project_id IN {PROJECTS}"
# The late-data sensor's change windows are one project's.
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


def project_index(column: str = "project_id") -> str:
    """The position of a row's project in the query's list (a hash lookup, not a scan of it)."""
    return f"transform(`{column}`, {PROJECTS}, range(toUInt32(length({PROJECTS}))), toUInt32(0))"


def latest_in_window_filter(table: SourceTable, database: str, mode: Mode) -> str:
    """WHERE clause selecting the latest version rows of the records that belong to the window."""
    t = qualified(database, table.name)
    if mode == "incremental":
        # Only a record with a version in the window can belong to it, and a version older than
        # the window cannot be its latest: the latest versions are looked up for the window's own
        # ids, among versions from the window start on. Later history is read only as the `id`
        # and `event_ts` of those ids, so an old window costs what a recent one does.
        candidates = f"SELECT project_id, id FROM {t} WHERE {IN_PROJECTS} AND {in_window('event_ts')}"
        latest = (
            f"SELECT project_id, id, max(event_ts) FROM {t} WHERE {IN_PROJECTS} AND event_ts >= {WINDOW_START} "
            f"AND (project_id, id) IN ({candidates}) GROUP BY project_id, id"
        )
    else:
        candidates = f"SELECT project_id, id FROM {t} WHERE {IN_PROJECTS} AND {in_window(table.event_time)}"
        latest = (
            f"SELECT project_id, id, max(event_ts) FROM {t} WHERE {IN_PROJECTS} AND (project_id, id) IN ({candidates}) "
            "GROUP BY project_id, id"
        )
    return f"{IN_PROJECTS} AND {in_window(window_column(table, mode))} AND (project_id, id, event_ts) IN ({latest})"


def export_sort_key(table: SourceTable) -> tuple[str, ...]:
    """The order of the lines: the table's sort key (its project first, so a query over several
    projects gives each project's lines together), then `is_deleted`, descending, so at equal
    key a tombstone sorts first and LIMIT 1 BY keeps it."""
    return (*table.order_by, "is_deleted")


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
