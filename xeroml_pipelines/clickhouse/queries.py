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

from collections.abc import Iterable

from xeroml_pipelines.tables import SESSION_COLUMNS, SESSION_TOMBSTONE_COLUMNS, SOURCES, SourceTable
from xeroml_pipelines.windows import Mode

_P = "{project_id:String}"
_START = "{window_start:DateTime64(3, 'UTC')}"
_END = "{window_end:DateTime64(3, 'UTC')}"
_WINDOW_MS = "{window_ms:UInt64}"

# ClickHouse writes the JSON lines itself (formatRow, in parallel on the reading threads):
# these settings fix every byte of that output, so a server upgrade or a user profile cannot
# change the files. They live in the SQL text, not per-call settings: on chDB per-call settings
# turn a stream into one materialized result.
JSON_SETTINGS = (
    "date_time_output_format = 'iso'",  # RFC 3339 in UTC, milliseconds: 2025-01-13T08:00:00.000Z
    "output_format_json_quote_64bit_integers = 0",
    "output_format_json_quote_decimals = 0",
    "output_format_decimal_trailing_zeros = 0",
    "output_format_json_quote_denormals = 0",
    "output_format_json_escape_forward_slashes = 0",
    "output_format_json_named_tuples_as_objects = 1",
    # Bare column names mean the stored columns, never the same-named cleaned values or
    # nulled tombstone fields: WHERE, the sort keys and the hash see what is stored.
    "prefer_column_name_to_alias = 1",
)
ARROW_SETTINGS = (
    "output_format_arrow_string_as_string = 1",
    "output_format_arrow_low_cardinality_as_dictionary = 0",
    # ClickHouse LZ4-compresses Arrow output by default: in-process (chDB) that is ~0.4 s per
    # 500 MB of lines compressed and decompressed again for nothing; over HTTP the transport
    # compresses (clickhouse-connect negotiates it).
    "output_format_arrow_compression_method = 'none'",
)


def _settings(block_rows: int) -> str:
    # Blocks are the unit of streaming: a block of 3 KB observations is what is in flight.
    return f"SETTINGS {', '.join((*JSON_SETTINGS, *ARROW_SETTINGS))}, max_block_size = {int(block_rows)}"


def _map_value_type(ch_type: str) -> str:
    return ch_type.rsplit(",", 1)[1].strip().rstrip(")")


def _valid_utf8(name: str, ch_type: str) -> str | None:
    """A string-bearing column with invalid UTF-8 replaced by U+FFFD (as toValidUTF8 does), or
    None for other types. The replacement runs only on the rare rows that need it: checking
    is a SIMD scan, rewriting is a copy."""
    q = f"`{name}`"
    if ch_type.startswith("Map("):
        value = _map_value_type(ch_type)
        plain = ch_type.replace("LowCardinality(String)", "String")
        if value == "String":
            ok = f"arrayAll(x -> isValidUTF8(x), mapKeys({q})) AND arrayAll(x -> isValidUTF8(x), mapValues({q}))"
            fixed = f"mapApply((k, v) -> (toValidUTF8(k), toValidUTF8(v)), {q})"
        else:
            ok = f"arrayAll(x -> isValidUTF8(x), mapKeys({q}))"
            fixed = f"mapApply((k, v) -> (toValidUTF8(k), v), {q})"
        return f"if({ok}, CAST({q}, '{plain}'), CAST({fixed}, '{plain}'))"
    if ch_type == "Array(String)":
        return f"if(arrayAll(x -> isValidUTF8(x), {q}), {q}, arrayMap(x -> toValidUTF8(x), {q}))"
    if "String" in ch_type:
        return f"if(isValidUTF8(ifNull({q}, '')), {q}, toValidUTF8({q}))"
    return None


def _invalid_utf8_count(columns: Iterable[tuple[str, str]]) -> str:
    """How many string values of the row are not valid UTF-8 (each is written with U+FFFD)."""
    terms = []
    for name, ch_type in columns:
        q = f"`{name}`"
        if ch_type.startswith("Map("):
            values = f" + arrayCount(x -> NOT isValidUTF8(x), mapValues({q}))" if _map_value_type(ch_type) == "String" else ""
            terms.append(f"arrayCount(x -> NOT isValidUTF8(x), mapKeys({q})){values}")
        elif ch_type == "Array(String)":
            terms.append(f"arrayCount(x -> NOT isValidUTF8(x), {q})")
        elif "String" in ch_type:
            terms.append(f"(NOT isValidUTF8(ifNull({q}, '')))")
    return "toUInt32(" + " + ".join(terms) + ")"


def _cleaned(columns: Iterable[tuple[str, str]]) -> str:
    """The columns as they are written: valid UTF-8, same names."""
    out = []
    for name, ch_type in columns:
        expr = _valid_utf8(name, ch_type)
        out.append(f"{expr} AS `{name}`" if expr else f"`{name}`")
    return ",\n        ".join(out)


def _line(columns: Iterable[tuple[str, str]], tombstone_columns: Iterable[str]) -> str:
    """The record's JSON line; a tombstone's line nulls all content (prompts, outputs, user ids).
    Only the branch a row needs is formatted (`if` evaluates its branches short-circuit)."""
    keep = set(tombstone_columns)
    names = [name for name, _ in columns]

    def field(name: str, tombstone: bool) -> str:
        if name == "is_deleted":
            return "toBool(`is_deleted`) AS `is_deleted`"
        return f"NULL AS `{name}`" if tombstone and name not in keep else f"`{name}`"

    live = ", ".join(field(n, False) for n in names)
    dead = ", ".join(field(n, True) for n in names)
    return f"if(`is_deleted`, formatRow('JSONEachRow', {dead}), formatRow('JSONEachRow', {live}))"


def _table(database: str, name: str) -> str:
    return f"`{database}`.`{name}`"


def _in_window(column: str) -> str:
    return f"`{column}` >= {_START} AND `{column}` < {_END}"


def window_column(table: SourceTable, mode: Mode) -> str:
    return "event_ts" if mode == "incremental" else table.event_time


def _window_index(column: str) -> str:
    """The partition a row belongs to: whole windows (days or hours) since the epoch, in UTC."""
    return f"intDiv(toUnixTimestamp64Milli(`{column}`), {_WINDOW_MS})"


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


def export_sort_key(table: SourceTable) -> tuple[str, ...]:
    """The order of a file's lines: the table's sort key without project_id (fixed by the
    export), then `is_deleted`, descending, so at equal key a tombstone sorts first and
    LIMIT 1 BY keeps it."""
    return (*table.order_by[1:], "is_deleted")


def records_query(table_name: str, database: str, mode: Mode, block_rows: int) -> str:
    """The lines of one window, in the file's line order.

    Each row is `_window_index` (its partition), `_row_hash` (for the partition's fingerprint),
    `_tombstone`, `_invalid_utf8` and `_line`, the record's JSON line as ClickHouse writes it.
    The lines are formatted below the ORDER BY, on every reading thread, before the merge into
    one ordered stream; reading follows the table's sort key, so the ORDER BY is a merge, not a sort.
    """
    table = SOURCES[table_name]
    columns = [(c.name, c.type) for c in table.columns]
    keys = export_sort_key(table)
    key_names = [f"_k{i}" for i in range(len(keys))]
    order = [*key_names[:-1], f"{key_names[-1]} DESC"]
    return f"""SELECT _window_index, _row_hash, _tombstone, _invalid_utf8, _line
FROM (
    SELECT _window_index, _row_hash, _tombstone, _invalid_utf8, {", ".join(key_names)},
        {_line(columns, table.tombstone_columns)} AS _line
    FROM (
        SELECT
        {_window_index(window_column(table, mode))} AS _window_index,
        cityHash64(`id`, `event_ts`) AS _row_hash,
        `is_deleted` AS _tombstone,
        {_invalid_utf8_count(columns)} AS _invalid_utf8,
        {", ".join(f"{k} AS _k{i}" for i, k in enumerate(keys))},
        {_cleaned(columns)}
        FROM {_table(database, table.name)}
        WHERE {latest_in_window_filter(table, database, mode)}
    )
)
ORDER BY {", ".join(order)}
LIMIT 1 BY _k{keys.index("id")}
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
    SELECT DISTINCT {_window_index(window_column(traces, mode))} AS _window_index, session_id FROM {t}
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
),
session_rows AS (
    SELECT
        w._window_index AS _window_index,
        cityHash64(s.session_id, s.event_ts) AS _row_hash,
        s.session_id AS id,
        {_P} AS project_id,
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
    SELECT _window_index, _row_hash, is_deleted AS _tombstone, {_invalid_utf8_count(SESSION_COLUMNS)} AS _invalid_utf8,
        {_cleaned(SESSION_COLUMNS)}
    FROM session_rows
)
SELECT _window_index, _row_hash, _tombstone, _invalid_utf8, {_line(SESSION_COLUMNS, SESSION_TOMBSTONE_COLUMNS)} AS _line
FROM cleaned_rows
ORDER BY _window_index, id
{_settings(block_rows)}, join_use_nulls = 0"""


def query_for(table_name: str, database: str, mode: Mode, block_rows: int) -> str:
    if table_name == "sessions":
        return sessions_query(database, mode, block_rows)
    return records_query(table_name, database, mode, block_rows)


def fingerprint_query(table_name: str, database: str, mode: Mode) -> str:
    """Per partition of a window (range): rows and the XOR of their `_row_hash`, from the very
    query an export runs, so a manifest's fingerprint and a recount can only differ if the data did.
    (ClickHouse prunes the unused `_line`: nothing is formatted.)"""
    body, settings = query_for(table_name, database, mode, 65_536).rsplit("\nSETTINGS", 1)
    return (
        "SELECT _window_index, count() AS rows, groupBitXor(_row_hash) AS fingerprint "
        f"FROM ({body}) GROUP BY _window_index ORDER BY _window_index\nSETTINGS{settings}"
    )
