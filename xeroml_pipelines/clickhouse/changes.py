"""Which partitions may have changed since the late-data sensor last looked: the cheap step that
spares it recounting every recent partition on every tick.

Rows are only ever added (new versions, deletes as tombstones, late rows); merges rewrite them
without changing what an export selects. A MergeTree part's name carries the highest insert
block it holds and, after a mutation (ALTER UPDATE/DELETE, lightweight delete), its mutation
version; both only grow. The mark is their maximum per ClickHouse partition. Rows in parts above
the last mark are the new ones (a merge that took in a new block is read whole: more rows than
needed, never fewer). A partition of the export can have changed only if a new row's window is
it, or a new row supersedes a version in it (its id has a version there) - for sessions, if the
session of a new trace row, or of the trace of a new observation row, has a trace there (or, in
incremental mode, an observation: its line is there too). Only those partitions are recounted.
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


def change_sources(table: str) -> tuple[str, ...]:
    """The ClickHouse tables whose new rows can change a table's partitions: a session's line
    changes with its traces and with their observations (its cost and usage)."""
    return ("traces", "observations") if table == "sessions" else (table,)


def marks(clickhouse: ClickHouseResource, tables: Sequence[str]) -> dict[str, Mark]:
    """The mark of each ClickHouse table behind `tables`, in one query."""
    sources = sorted({source for t in tables for source in change_sources(t)})
    rows = clickhouse.get_client().query(MARKS_SQL, parameters={"database": clickhouse.database, "tables": sources}).result_rows
    found: dict[str, Mark] = {source: {} for source in sources}
    for table, partition, version in rows:
        found[str(table)][str(partition)] = int(version)
    return found


def _new_rows(t: str, column: str = "id") -> str:
    """`column` of the rows of `t` in parts above the `since` mark."""
    return (
        f"SELECT {column} FROM {t} WHERE project_id = {PROJECT} "
        f"AND if(indexOf({{since_partitions:Array(String)}}, _partition_id) = 0, 1, "
        f"{_PART_VERSION} > {{since_versions:Array(UInt64)}}[indexOf({{since_partitions:Array(String)}}, _partition_id)])"
    )


def _session_windows(database: str, mode: Mode, source: str) -> str:
    """The windows holding a line of a session that new rows of `source` touched: the sessions
    of the traces those rows are (or belong to), in every window of those sessions' traces and,
    in incremental mode, of the traces' observations (a session has a line in both)."""
    traces, observations = qualified(database, "traces"), qualified(database, "observations")
    new_trace_ids = _new_rows(traces) if source == "traces" else _new_rows(observations, "trace_id")
    touched = f"SELECT session_id FROM {traces} WHERE project_id = {PROJECT} AND id IN ({new_trace_ids})"
    session_traces = f"SELECT id FROM {traces} WHERE project_id = {PROJECT} AND session_id IN ({touched})"
    column = window_column(SOURCES["traces"], mode)
    windows = [
        f"SELECT {window_index(column)} AS w FROM {traces} "
        f"WHERE project_id = {PROJECT} AND {in_window(column)} AND id IN ({session_traces})"
    ]
    if mode == "incremental":
        windows.append(
            f"SELECT {window_index('event_ts')} AS w FROM {observations} "
            f"WHERE project_id = {PROJECT} AND {in_window('event_ts')} AND trace_id IN ({session_traces})"
        )
    return "SELECT DISTINCT w FROM (" + " UNION ALL ".join(windows) + ")"


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
    if table == "sessions":
        sql = _session_windows(clickhouse.database, mode, source)
    else:
        t = qualified(clickhouse.database, source)
        column = window_column(SOURCES[source], mode)
        sql = (
            f"SELECT DISTINCT {window_index(column)} FROM {t} "
            f"WHERE project_id = {PROJECT} AND {in_window(column)} AND id IN ({_new_rows(t)})"
        )
    partitions = sorted(since)
    params = {
        "project_id": project_id,
        "since_partitions": partitions,
        "since_versions": [since[p] for p in partitions],
        **Span.of(windows).sql_params(),
    }
    indexes = {int(index) for (index,) in clickhouse.get_client().query(sql, parameters=params).result_rows}
    return {w.partition for w in windows if w.index in indexes}
