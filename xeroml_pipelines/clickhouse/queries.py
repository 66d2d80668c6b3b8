"""The SQL of an export: which version of which record belongs to a window, and how it is shaped.

All values travel as server-side query parameters (`{name:Type}`); only the database name, a
validated identifier, is spliced into the text.

Selection contract (see README, "Export semantics"): a record is its `(project_id, id)`; its
latest version is the one with the greatest `event_ts` (at equal `event_ts` a delete wins).
- incremental: a window holds every record whose latest version has `event_ts` in the window.
- snapshot: a window holds every record whose latest version has its event time in the window.
`FINAL` is not used: on a ReplacingMergeTree with `is_deleted` it drops deleted records, which
must be exported as tombstones, and it de-duplicates by the sort key, which contains the date,
not by `id`.
"""

from __future__ import annotations

from xeroml_pipelines.export.window import Mode
from xeroml_pipelines.tables import SOURCES, SourceTable

_P = "{project_id:String}"
_START = "{window_start:DateTime64(3, 'UTC')}"
_END = "{window_end:DateTime64(3, 'UTC')}"
_BUCKET_MS = "{bucket_ms:UInt64}"

# Settings that shape what ClickHouse hands us, pinned so a server upgrade cannot change the
# files. In the SQL text, not per-call settings: on chDB per-call settings turn a stream into
# one materialized result.
OUTPUT_SETTINGS = (
    "output_format_arrow_string_as_string = 1, "
    "output_format_arrow_low_cardinality_as_dictionary = 0"
)


def _settings(block_rows: int) -> str:
    # Blocks are the unit of streaming: a block of 3 KB observations is what is in flight.
    return f"SETTINGS {OUTPUT_SETTINGS}, max_block_size = {int(block_rows)}"


def _export_expr(name: str, ch_type: str) -> str:
    """Clean one column for JSON: valid UTF-8 strings, JSON numbers for decimals, a bool flag."""
    q = f"`{name}`"
    if name == "is_deleted":
        return f"toBool({q})"
    if ch_type.startswith("Map("):
        value = ch_type.rsplit(",", 1)[1].strip().rstrip(")")
        value_expr = {"String": "toValidUTF8(v)", "UInt64": "v"}.get(value, "toFloat64(v)")
        return f"mapApply((k, v) -> (toValidUTF8(k), {value_expr}), {q})"
    if ch_type == "Array(String)":
        return f"arrayMap(x -> toValidUTF8(x), {q})"
    if "Decimal" in ch_type:
        return f"toFloat64({q})"
    if "String" in ch_type:
        return f"toValidUTF8({q})"
    return q


def _table(database: str, name: str) -> str:
    return f"`{database}`.`{name}`"


def _in_window(column: str) -> str:
    return f"`{column}` >= {_START} AND `{column}` < {_END}"


def window_column(table: SourceTable, mode: Mode) -> str:
    return "event_ts" if mode == "incremental" else table.event_time


def _bucket(column: str) -> str:
    """The partition a row belongs to: whole buckets (days or hours) since the epoch, in UTC."""
    return f"intDiv(toUnixTimestamp64Milli(`{column}`), {_BUCKET_MS})"


def latest_in_window_filter(table: SourceTable, database: str, mode: Mode) -> str:
    """WHERE clause selecting the latest version rows of the records that belong to the window."""
    t = _table(database, table.name)
    if mode == "incremental":
        # A version older than the window cannot be the latest of a record that has one in the
        # window, so only versions from the window start on are looked at.
        latest = f"SELECT id, max(event_ts) FROM {t} WHERE project_id = {_P} AND event_ts >= {_START} GROUP BY id"
    else:
        candidates = f"SELECT id FROM {t} WHERE project_id = {_P} AND {_in_window(table.event_time)}"
        latest = f"SELECT id, max(event_ts) FROM {t} WHERE project_id = {_P} AND id IN ({candidates}) GROUP BY id"
    return f"project_id = {_P} AND {_in_window(window_column(table, mode))} AND (id, event_ts) IN ({latest})"


def records_query(table_name: str, database: str, mode: Mode, block_rows: int, ranged: bool = False) -> str:
    """Rows of one window, or of several (`ranged`): then ordered by partition first, so the
    stream can be cut into one file per partition. Each row carries `_bucket` (its partition) and
    `_row_hash` (for the partition's fingerprint); neither is written to the file."""
    table = SOURCES[table_name]
    projection = ",\n    ".join(f"{_export_expr(c.name, c.type)} AS `{c.name}`" for c in table.columns)
    order = ("_bucket", *table.export_order_by) if ranged else table.export_order_by
    # The cleaning projection sits outside: aliases named like columns would otherwise shadow
    # them in WHERE/ORDER BY and defeat the primary index.
    return f"""SELECT
    _bucket,
    cityHash64(`id`, `event_ts`) AS _row_hash,
    {projection}
FROM (
    SELECT *, {_bucket(window_column(table, mode))} AS _bucket
    FROM {_table(database, table.name)}
    WHERE {latest_in_window_filter(table, database, mode)}
    ORDER BY {", ".join(order)}
    LIMIT 1 BY id
)
{_settings(block_rows)}"""


def sessions_query(database: str, mode: Mode, block_rows: int) -> str:
    """One row per session with a trace in the traces window, aggregated over all its live traces.

    A trace counts for the session its *latest* version names, so a trace moved between sessions
    or deleted later is counted where it is now. Costs and usage come from the latest live
    version of each observation of the session's live traces.
    """
    traces = SOURCES["traces"]
    t = _table(database, "traces")
    o = _table(database, "observations")
    # Latest-version tie-break: greatest event_ts, then a delete over a live row.
    return f"""WITH
window_sessions AS (
    SELECT DISTINCT {_bucket(window_column(traces, mode))} AS _bucket, session_id FROM {t}
    WHERE {latest_in_window_filter(traces, database, mode)} AND session_id IS NOT NULL AND session_id != ''
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
        WHERE project_id = {_P}
          AND id IN (SELECT id FROM {t} WHERE project_id = {_P} AND session_id IN (SELECT session_id FROM window_sessions))
        GROUP BY id
        HAVING v.1 IN (SELECT session_id FROM window_sessions)
    )
),
trace_costs AS (
    SELECT v.1 AS trace_id, sum(v.3) AS cost, sumMap(v.4) AS usage, max(version) AS obs_version
    FROM (
        SELECT id,
            argMax((trace_id, is_deleted, ifNull(total_cost, 0), usage_details), (event_ts, is_deleted)) AS v,
            max(event_ts) AS version
        FROM {o}
        WHERE project_id = {_P} AND trace_id IN (SELECT trace_id FROM session_traces WHERE deleted = 0)
        GROUP BY id
        HAVING v.2 = 0 AND v.1 IN (SELECT trace_id FROM session_traces WHERE deleted = 0)
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
)
SELECT
    w._bucket AS _bucket,
    cityHash64(s.session_id, s.event_ts) AS _row_hash,
    toValidUTF8(s.session_id) AS id,
    toValidUTF8({_P}) AS project_id,
    arrayMap(x -> toValidUTF8(x), s.environments) AS environments,
    arrayMap(x -> toValidUTF8(x), s.user_ids) AS user_ids,
    s.first_trace_at AS first_trace_at,
    s.last_trace_at AS last_trace_at,
    s.trace_count AS trace_count,
    arrayMap(x -> toValidUTF8(x), s.trace_ids) AS trace_ids,
    arrayMap(x -> toValidUTF8(x), s.tags) AS tags,
    s.total_cost AS total_cost,
    mapApply((k, v) -> (toValidUTF8(k), v), s.usage_details) AS usage_details,
    s.event_ts AS event_ts,
    toBool(s.trace_count = 0) AS is_deleted
FROM window_sessions AS w INNER JOIN sessions AS s ON w.session_id = s.session_id
ORDER BY _bucket, s.session_id
{_settings(block_rows)}, join_use_nulls = 0"""


def query_for(table_name: str, database: str, mode: Mode, block_rows: int, ranged: bool = False) -> str:
    if table_name == "sessions":
        return sessions_query(database, mode, block_rows)
    return records_query(table_name, database, mode, block_rows, ranged)


def fingerprint_query(table_name: str, database: str, mode: Mode) -> str:
    """Per partition of a window (range): rows and the XOR of their `_row_hash`, from the very
    query an export runs, so a manifest's fingerprint and a recount can only differ if the data did."""
    body = query_for(table_name, database, mode, 65_536).rsplit("\nSETTINGS", 1)[0]
    return f"SELECT _bucket, count() AS rows, groupBitXor(_row_hash) AS fingerprint FROM ({body}) GROUP BY _bucket ORDER BY _bucket"
