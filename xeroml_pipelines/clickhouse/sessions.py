"""The sessions of a window: one row per session with a trace (or, in incremental mode, an
observation of one of its traces) in the window."""

from __future__ import annotations

from xeroml_pipelines.clickhouse.lines import Shape, cleaned, invalid_utf8_count, payload, settings
from xeroml_pipelines.clickhouse.selection import (
    PROJECT,
    in_window,
    latest_in_window_filter,
    qualified,
    window_column,
    window_index,
)
from xeroml_pipelines.tables import SESSION_COLUMNS, SESSION_TOMBSTONE_COLUMNS, SOURCES
from xeroml_pipelines.windows import Mode


def sessions_query(
    database: str, mode: Mode, block_rows: int, exclude: frozenset[str] = frozenset(), shape: Shape = "lines"
) -> str:
    """One row per session with a trace in the traces window, aggregated over all its live traces;
    in incremental mode also per session one of whose traces has an observation version in the
    window (a generation's cost often arrives after its trace's last change: the session's line
    must follow it).

    A trace counts for the session its *latest* version names, so a trace moved between sessions
    or deleted later is counted where it is now. Costs and usage come from the latest live
    version of each observation of the session's live traces; the session's `event_ts` is the
    greatest of its traces' and their observations' versions, a deleted observation's included.
    """
    traces = SOURCES["traces"]
    columns = [(name, type_) for name, type_ in SESSION_COLUMNS if name not in exclude]
    t = qualified(database, "traces")
    o = qualified(database, "observations")
    expressions, _ = payload(shape, columns, SESSION_TOMBSTONE_COLUMNS)
    by_observation = ""
    if mode == "incremental":
        # the sessions (as their traces' latest versions name them) of the observations with a
        # version in the window: two reads of the window's (trace_id, event_ts), by the skip index
        observed = f"SELECT trace_id FROM {o} WHERE project_id = {PROJECT} AND {in_window('event_ts')}"
        by_observation = f"""
    UNION DISTINCT
    SELECT w._window_index, s.session_id FROM (
        SELECT DISTINCT {window_index("event_ts")} AS _window_index, trace_id FROM {o}
        WHERE project_id = {PROJECT} AND {in_window("event_ts")}
    ) AS w
    INNER JOIN (
        SELECT id, argMax(session_id, (event_ts, is_deleted)) AS session_id FROM {t}
        WHERE project_id = {PROJECT} AND id IN ({observed})
        GROUP BY id
    ) AS s ON s.id = w.trace_id
    WHERE s.session_id IS NOT NULL AND s.session_id != ''"""
    # Latest-version tie-break: greatest event_ts, then a delete over a live row.
    return f"""WITH
window_sessions AS (
    SELECT DISTINCT {window_index(window_column(traces, mode))} AS _window_index, session_id FROM {t}
    WHERE {latest_in_window_filter(traces, database, mode)} AND session_id IS NOT NULL AND session_id != ''{by_observation}
),
session_traces AS (
    SELECT
        id AS trace_id,
        v.1 AS session_id, v.2 AS deleted, v.3 AS ts, v.4 AS user_id, v.5 AS environment, v.6 AS tags,
        version
    FROM (
        SELECT id,
            argMax((session_id, is_deleted, timestamp, user_id, environment, tags), (event_ts, is_deleted)) AS v,
            max(event_ts) AS version
        FROM {t}
        WHERE project_id = {PROJECT}
          AND id IN (SELECT id FROM {t} WHERE project_id = {PROJECT} AND session_id IN (SELECT session_id FROM window_sessions))
        GROUP BY id
        HAVING v.1 IN (SELECT session_id FROM window_sessions)
    )
),
trace_costs AS (
    SELECT v.1 AS trace_id, sumIf(v.3, v.2 = 0) AS cost, sumMapIf(v.4, v.2 = 0) AS usage, max(version) AS obs_version
    FROM (
        SELECT id,
            argMax((trace_id, is_deleted, ifNull(total_cost, 0), usage_details), (event_ts, is_deleted)) AS v,
            max(event_ts) AS version
        FROM {o}
        WHERE project_id = {PROJECT} AND trace_id IN (SELECT trace_id FROM session_traces WHERE deleted = 0)
        GROUP BY id
        HAVING v.1 IN (SELECT trace_id FROM session_traces WHERE deleted = 0)
    )
    GROUP BY trace_id
),
sessions AS (
    SELECT
        session_id,
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
    FROM session_traces LEFT JOIN trace_costs USING (trace_id)
    GROUP BY session_id
),
session_rows AS (
    SELECT
        w._window_index AS _window_index,
        cityHash64(s.session_id, s.event_ts) AS _row_hash,
        s.session_id AS id,
        {PROJECT} AS project_id,
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
    FROM window_sessions AS w INNER JOIN sessions AS s ON w.session_id = s.session_id
),
cleaned_rows AS (
    SELECT _window_index, _row_hash, is_deleted AS _tombstone, {invalid_utf8_count(columns)} AS _invalid_utf8,
        {cleaned(columns)}
    FROM session_rows
)
SELECT _window_index, _row_hash, _tombstone, _invalid_utf8, {expressions}
FROM cleaned_rows
ORDER BY _window_index, id
{settings(block_rows)}, join_use_nulls = 0"""
