"""The sessions table: one line per session with a trace (or, in incremental mode, an
observation of one of its traces) in the window, aggregated over all its live traces."""

from __future__ import annotations

from xeroml_pipelines.sql.lines import Shape, cleaned, invalid_utf8_count, payload, settings
from xeroml_pipelines.sql.selection import (
    IN_PROJECTS,
    PROJECT,
    in_window,
    latest_in_window_filter,
    new_rows,
    project_index,
    qualified,
    window_column,
    window_index,
)
from xeroml_pipelines.sql.source_tables import TRACES, Column
from xeroml_pipelines.tables.spec import ExportedTable
from xeroml_pipelines.windows import Mode

COLUMNS = (
    Column("id", "String", description="the session id"),
    Column("project_id", "String"),
    Column("environments", "Array(String)"),
    Column("user_ids", "Array(String)"),
    Column("first_trace_at", "DateTime64(3)"),
    Column("last_trace_at", "DateTime64(3)"),
    Column("trace_count", "UInt64"),
    Column("trace_ids", "Array(String)"),
    Column("tags", "Array(String)"),
    Column("total_cost", "Float64"),
    Column("usage_details", "Map(String, UInt64)"),
    Column("event_ts", "DateTime64(3)"),
    Column("is_deleted", "UInt8"),
)
# A tombstone keeps its identity and version, nothing aggregated from deleted traces.
TOMBSTONE_COLUMNS = ("id", "project_id", "event_ts", "is_deleted")


def sessions_query(database: str, mode: Mode, block_rows: int, exclude: frozenset[str], shape: Shape) -> str:
    """One row per session with a trace in the traces window, aggregated over all its live traces;
    in incremental mode also per session one of whose traces has an observation version in the
    window (a generation's cost often arrives after its trace's last change: the session's line
    must follow it).

    A trace counts for the session its *latest* version names, so a trace moved between sessions
    or deleted later is counted where it is now. Costs and usage come from the latest live
    version of each observation of the session's live traces; the session's `event_ts` is the
    greatest of its traces' and their observations' versions, a deleted observation's included.
    """
    columns = [(c.name, c.type) for c in COLUMNS if c.name not in exclude]
    t = qualified(database, "traces")
    o = qualified(database, "observations")
    expressions, _ = payload(shape, columns, TOMBSTONE_COLUMNS)
    by_observation = ""
    if mode == "incremental":
        # the sessions (as their traces' latest versions name them) of the observations with a
        # version in the window: two reads of the window's (trace_id, event_ts), by the skip index
        observed = f"SELECT project_id, trace_id FROM {o} WHERE {IN_PROJECTS} AND {in_window('event_ts')}"
        by_observation = f"""
    UNION DISTINCT
    SELECT w._window_index, w.project_id, s.session_id FROM (
        SELECT DISTINCT {window_index("event_ts")} AS _window_index, project_id, trace_id FROM {o}
        WHERE {IN_PROJECTS} AND {in_window("event_ts")}
    ) AS w
    INNER JOIN (
        SELECT project_id, id, argMax(session_id, (event_ts, is_deleted)) AS session_id FROM {t}
        WHERE {IN_PROJECTS} AND (project_id, id) IN ({observed})
        GROUP BY project_id, id
    ) AS s ON s.project_id = w.project_id AND s.id = w.trace_id
    WHERE s.session_id IS NOT NULL AND s.session_id != ''"""
    # Latest-version tie-break: greatest event_ts, then a delete over a live row.
    return f"""WITH
window_sessions AS (
    SELECT DISTINCT {window_index(window_column(TRACES, mode))} AS _window_index, project_id, session_id FROM {t}
    WHERE {latest_in_window_filter(TRACES, database, mode)} AND session_id IS NOT NULL AND session_id != ''{by_observation}
),
session_traces AS (
    SELECT
        project_id, id AS trace_id,
        v.1 AS session_id, v.2 AS deleted, v.3 AS ts, v.4 AS user_id, v.5 AS environment, v.6 AS tags,
        version
    FROM (
        SELECT project_id, id,
            argMax((session_id, is_deleted, timestamp, user_id, environment, tags), (event_ts, is_deleted)) AS v,
            max(event_ts) AS version
        FROM {t}
        WHERE {IN_PROJECTS} AND (project_id, id) IN (
            SELECT project_id, id FROM {t}
            WHERE {IN_PROJECTS} AND (project_id, session_id) IN (SELECT project_id, session_id FROM window_sessions)
        )
        GROUP BY project_id, id
        HAVING (project_id, v.1) IN (SELECT project_id, session_id FROM window_sessions)
    )
),
trace_costs AS (
    SELECT project_id, v.1 AS trace_id, sumIf(v.3, v.2 = 0) AS cost, sumMapIf(v.4, v.2 = 0) AS usage,
        max(version) AS obs_version
    FROM (
        SELECT project_id, id,
            argMax((trace_id, is_deleted, ifNull(total_cost, 0), usage_details), (event_ts, is_deleted)) AS v,
            max(event_ts) AS version
        FROM {o}
        WHERE {IN_PROJECTS} AND (project_id, trace_id) IN (SELECT project_id, trace_id FROM session_traces WHERE deleted = 0)
        GROUP BY project_id, id
        HAVING (project_id, v.1) IN (SELECT project_id, trace_id FROM session_traces WHERE deleted = 0)
    )
    GROUP BY project_id, trace_id
),
sessions AS (
    SELECT
        project_id, session_id,
        arraySort(groupUniqArrayIf(environment, deleted = 0)) AS environments,
        arraySort(groupUniqArrayIf(assumeNotNull(user_id), deleted = 0 AND user_id IS NOT NULL)) AS user_ids,
        minIf(ts, deleted = 0) AS first_trace_at,
        maxIf(ts, deleted = 0) AS last_trace_at,
        countIf(deleted = 0) AS trace_count,
        arraySort(groupArrayIf(trace_id, deleted = 0)) AS trace_ids,
        arraySort(groupUniqArrayArrayIf(tags, deleted = 0)) AS tags,
        toFloat64(sumIf(cost, deleted = 0)) AS total_cost,
        sumMapIf(usage, deleted = 0 AND length(mapKeys(usage)) > 0) AS usage_details,
        greatest(max(version), max(obs_version)) AS event_ts
    FROM session_traces LEFT JOIN trace_costs USING (project_id, trace_id)
    GROUP BY project_id, session_id
),
session_rows AS (
    SELECT
        w._window_index AS _window_index,
        cityHash64(s.session_id, s.event_ts) AS _row_hash,
        s.session_id AS id,
        s.project_id AS project_id,
        s.environments AS environments,
        s.user_ids AS user_ids,
        s.first_trace_at AS first_trace_at,
        s.last_trace_at AS last_trace_at,
        s.trace_count AS trace_count,
        s.trace_ids AS trace_ids,
        s.tags AS tags,
        s.total_cost AS total_cost,
        s.usage_details AS usage_details,
        s.event_ts AS event_ts,
        toUInt8(s.trace_count = 0) AS is_deleted
    FROM window_sessions AS w INNER JOIN sessions AS s ON w.project_id = s.project_id AND w.session_id = s.session_id
),
cleaned_rows AS (
    SELECT _window_index, {project_index()} AS _project_index, _row_hash, is_deleted AS _tombstone,
        {invalid_utf8_count(columns)} AS _invalid_utf8,
        {cleaned(columns)}
    FROM session_rows
)
SELECT _window_index, _project_index, _row_hash, _tombstone, _invalid_utf8, {expressions}
FROM cleaned_rows
ORDER BY _project_index, _window_index, id
{settings(block_rows)}, join_use_nulls = 0"""


def session_windows(database: str, mode: Mode, source: str) -> str:
    """The windows holding a line of a session that new rows of `source` touched: the sessions
    of the traces those rows are (or belong to), in every window of those sessions' traces and,
    in incremental mode, of the traces' observations (a session has a line in both)."""
    traces, observations = qualified(database, "traces"), qualified(database, "observations")
    new_trace_ids = new_rows(traces) if source == "traces" else new_rows(observations, "trace_id")
    touched = f"SELECT session_id FROM {traces} WHERE project_id = {PROJECT} AND id IN ({new_trace_ids})"
    session_traces = f"SELECT id FROM {traces} WHERE project_id = {PROJECT} AND session_id IN ({touched})"
    column = window_column(TRACES, mode)
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


TABLE = ExportedTable(
    name="sessions",
    title="Session",
    description=(
        "A session as aggregated from its live traces and their observations' latest versions. A session "
        "is written again in every partition in which one of its traces (or, in incremental mode, an "
        "observation of one) changed: its current state is the line with the greatest event_ts (a "
        "tombstone wins a tie)."
    ),
    columns=COLUMNS,
    computed=(),
    tombstone_columns=TOMBSTONE_COLUMNS,
    sources=("traces", "observations"),
    change_sources=("traces", "observations"),
    snapshot_column=None,  # a snapshot window is on its traces' timestamp
    query=sessions_query,
    changed_windows=session_windows,
)
