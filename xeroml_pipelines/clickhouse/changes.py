"""Which partitions may have changed since the late-data sensor last looked: the cheap step that
spares it recounting every recent partition on every tick.

Rows are only ever added (new versions, deletes as tombstones, late rows); merges rewrite them
without changing what an export selects. A MergeTree part's name carries the highest insert
block it holds and, after a mutation (ALTER UPDATE/DELETE, lightweight delete), its mutation
version; both only grow. The mark is their maximum per ClickHouse partition. Rows in parts above
the last mark are the new ones (a merge that took in a new block is read whole: more rows than
needed, never fewer). Which partitions new rows can have changed is the exported table's to
say (`ExportedTable.changed_windows`): for a table of records, a new row's window and the windows
of its record's other versions; for sessions, the windows of the sessions of the traces the rows
are or belong to. Only those partitions are recounted.
"""

from __future__ import annotations

from collections.abc import Sequence

from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.tables import exported_table
from xeroml_pipelines.windows import Mode, Span, Window

Mark = dict[str, int]  # ClickHouse partition id -> highest block number or mutation version seen

# The exporter's one read of `system.parts` (deploy/clickhouse-setup.sql grants exactly its columns).
MARKS_SQL = (
    "SELECT table, partition_id, max(greatest(max_block_number, data_version)) FROM system.parts "
    "WHERE database = {database:String} AND table IN {tables:Array(String)} AND active "
    "GROUP BY table, partition_id"
)


def marks(clickhouse: ClickHouseResource, tables: Sequence[str]) -> dict[str, Mark]:
    """The mark of each ClickHouse table behind `tables`, in one query."""
    sources = sorted({source for t in tables for source in exported_table(t).change_sources})
    rows = clickhouse.get_client().query(MARKS_SQL, parameters={"database": clickhouse.database, "tables": sources}).result_rows
    found: dict[str, Mark] = {source: {} for source in sources}
    for table, partition, version in rows:
        found[str(table)][str(partition)] = int(version)
    return found


def changed_windows(
    clickhouse: ClickHouseResource,
    project_id: str,
    table: str,
    mode: Mode,
    windows: Sequence[Window],
    source: str,
    since: Mark,
) -> set[str]:
    """The partitions among `windows` (consecutive) that rows of `source` (one of the table's
    `change_sources`) added since `since` may have changed."""
    sql = exported_table(table).changed_windows(clickhouse.database, mode, source)
    partitions = sorted(since)
    params = {
        "project_id": project_id,
        "since_partitions": partitions,
        "since_versions": [since[p] for p in partitions],
        **Span.of(windows).sql_params(),
    }
    indexes = {int(index) for (index,) in clickhouse.get_client().query(sql, parameters=params).result_rows}
    return {w.partition for w in windows if w.index in indexes}
