"""Which partitions may have changed since the late-data sensor last looked: the cheap step that
spares it recounting every recent partition on every tick.

Rows are only ever added (new versions, deletes as tombstones, late rows); merges rewrite them
without changing what an export selects. A MergeTree part's name carries the highest insert
block it holds and, after a mutation (ALTER UPDATE/DELETE, lightweight delete), its mutation
version; both only grow. The mark is their maximum per ClickHouse partition. Rows in parts above
the last mark are the new ones (a merge that took in a new block is read whole: more rows than
needed, never fewer). A partition of the export can have changed only if a new row's window is
it, or a new row supersedes a version in it (its id has a version there) - for sessions, if a new
trace row's session has a trace there. Only those partitions are recounted.
"""

from __future__ import annotations

from collections.abc import Sequence

from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.clickhouse.selection import PROJECT, in_window, qualified, window_column, window_index
from xeroml_pipelines.tables import SOURCES
from xeroml_pipelines.windows import Mode, Span, Window

Mark = dict[str, int]  # ClickHouse partition id -> highest block number or mutation version seen

# A part's name is partition_minblock_maxblock_level[_mutation]; partition ids have no "_".
_PART_VERSION = "greatest(toUInt64OrZero(splitByChar('_', _part)[3]), toUInt64OrZero(splitByChar('_', _part)[5]))"


# The exporter's one read of `system.parts` (deploy/clickhouse-setup.sql grants exactly its columns).
MARKS_SQL = (
    "SELECT table, partition_id, max(greatest(max_block_number, data_version)) FROM system.parts "
    "WHERE database = {database:String} AND table IN {tables:Array(String)} AND active "
    "GROUP BY table, partition_id"
)


def source_table(table: str) -> str:
    """The ClickHouse table whose rows decide a table's partitions (sessions come from traces)."""
    return "traces" if table == "sessions" else table


def marks(clickhouse: ClickHouseResource, tables: Sequence[str]) -> dict[str, Mark]:
    """The mark of each ClickHouse table behind `tables`, in one query."""
    sources = sorted({source_table(t) for t in tables})
    rows = clickhouse.get_client().query(MARKS_SQL, parameters={"database": clickhouse.database, "tables": sources}).result_rows
    found: dict[str, Mark] = {source: {} for source in sources}
    for table, partition, version in rows:
        found[str(table)][str(partition)] = int(version)
    return found


def changed_windows(
    clickhouse: ClickHouseResource, project_id: str, table: str, mode: Mode, windows: Sequence[Window], since: Mark
) -> set[str]:
    """The partitions among `windows` (consecutive) that rows added since `since` may have changed."""
    source = SOURCES[source_table(table)]
    t = qualified(clickhouse.database, source.name)
    column = window_column(source, mode)
    new_ids = (
        f"SELECT id FROM {t} WHERE project_id = {PROJECT} "
        f"AND if(indexOf({{since_partitions:Array(String)}}, _partition_id) = 0, 1, "
        f"{_PART_VERSION} > {{since_versions:Array(UInt64)}}[indexOf({{since_partitions:Array(String)}}, _partition_id)])"
    )
    if table == "sessions":
        # a session's line in a partition changes when any of its traces does
        touched = f"session_id IN (SELECT session_id FROM {t} WHERE project_id = {PROJECT} AND id IN ({new_ids}))"
    else:
        touched = f"id IN ({new_ids})"
    sql = f"SELECT DISTINCT {window_index(column)} FROM {t} WHERE project_id = {PROJECT} AND {in_window(column)} AND {touched}"
    partitions = sorted(since)
    params = {
        "project_id": project_id,
        "since_partitions": partitions,
        "since_versions": [since[p] for p in partitions],
        **Span.of(windows).sql_params(),
    }
    indexes = {int(index) for (index,) in clickhouse.get_client().query(sql, parameters=params).result_rows}
    return {w.partition for w in windows if w.index in indexes}
