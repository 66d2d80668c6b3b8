"""The enriched_observations table (opt-in): every observation with its derived metrics and the
attributes of its trace's latest version, so that analysis runs on one table instead of a join.

An enriched observation's version is the greater of its observation's and its trace's latest
`event_ts`: in incremental mode its line goes to that version's window, so a trace that gets a
user id later re-emits its observations there. A deleted observation, or a deleted trace, gives a
tombstone. An observation whose trace is not (yet) stored has null trace attributes (no tags, an
empty metadata map).
"""

from __future__ import annotations

from xeroml_pipelines.sql.lines import Shape, cleaned, invalid_utf8_count, payload, settings, valid_utf8
from xeroml_pipelines.sql.selection import (
    IN_PROJECTS,
    PROJECT,
    WINDOW_END,
    export_sort_key,
    in_window,
    new_rows,
    project_index,
    qualified,
    window_index,
)
from xeroml_pipelines.sql.source_tables import OBSERVATIONS, Column
from xeroml_pipelines.tables.observations import METRICS
from xeroml_pipelines.tables.spec import ExportedTable
from xeroml_pipelines.windows import Mode

# (exported name, the trace's column, its type in the line): null (or empty) without a trace.
TRACE_ATTRIBUTES = (
    ("trace_name", "name", "Nullable(String)"),
    ("user_id", "user_id", "Nullable(String)"),
    ("session_id", "session_id", "Nullable(String)"),
    ("tags", "tags", "Array(String)"),
    ("release", "release", "Nullable(String)"),
    ("trace_version", "version", "Nullable(String)"),
    ("trace_metadata", "metadata", "Map(LowCardinality(String), String)"),
)
_DESCRIPTIONS = {
    "trace_name": "the name of the observation's trace (its latest version)",
    "trace_version": "the version of the observation's trace",
    "trace_metadata": "the metadata of the observation's trace",
}
_TRACE_KEY = "concat(`project_id`, '/', `trace_id`)"
TRACE_COLUMNS = tuple(Column(name, type_, description=_DESCRIPTIONS.get(name)) for name, _, type_ in TRACE_ATTRIBUTES)


def _lookup(index: int, name: str, type_: str) -> tuple[str, str, str]:
    """(the attribute as one value per trace, cleaned; the expression looking it up by an
    observation's trace_id; the exported column's name). A trace's tags and metadata travel as
    JSON text: `transform` maps strings, numbers and times only. A trace is its project and id
    (`_TRACE_KEY`: a project id has no '/')."""
    cleaned_value = valid_utf8(f"_a{index}", type_) or f"`_a{index}`"
    looked_up = f"transform({_TRACE_KEY}, _ids, arrayMap(r -> r.{index + 5}, _rows), {{}})"
    if type_.startswith("Array"):
        return f"toJSONString({cleaned_value})", f"JSONExtract({looked_up.format(repr('[]'))}, 'Array(String)')", name
    if type_.startswith("Map"):
        return f"toJSONString({cleaned_value})", f"JSONExtract({looked_up.format(repr('{}'))}, 'Map(String, String)')", name
    return cleaned_value, looked_up.format("CAST(NULL, 'Nullable(String)')"), name


def enriched_query(database: str, mode: Mode, block_rows: int, exclude: frozenset[str], shape: Shape) -> str:
    """One line per observation whose version (the greater of its own and its trace's) is in the
    window (snapshot mode: whose latest version starts in it), in observations' file order.

    Candidates are the observations with a version in the window and, in incremental mode, the
    observations of the traces with a version in the window. Their traces' latest versions are
    read first, into one constant, and each observation's latest version looks its trace up in
    it by hash (`transform`) as it streams: a JOIN would give up the observations' key order,
    and the ORDER BY would become a sort of every formatted line in memory."""
    o, t = qualified(database, "observations"), qualified(database, "traces")
    stored = [(c.name, c.type) for c in OBSERVATIONS.columns if c.name not in exclude]
    metrics = [c for c in METRICS if c.name not in exclude]
    attributes = [(name, column, type_) for name, column, type_ in TRACE_ATTRIBUTES if name not in exclude]
    trace_columns = [(name, type_) for name, _, type_ in attributes]
    columns = [*stored, *((c.name, c.type) for c in metrics), *trace_columns]
    keys = export_sort_key(OBSERVATIONS)
    if mode == "incremental":
        candidates = (
            f"SELECT project_id, id FROM {o} WHERE {IN_PROJECTS} AND {in_window('event_ts')} UNION DISTINCT "
            f"SELECT project_id, id FROM {o} WHERE {IN_PROJECTS} AND (project_id, trace_id) IN "
            f"(SELECT project_id, id FROM {t} WHERE {IN_PROJECTS} AND {in_window('event_ts')})"
        )
        window_column = "_version"
        # a record whose observation has a version after the window is in a later window
        before_end = f" AND event_ts < {WINDOW_END}"
    else:
        candidates = f"SELECT project_id, id FROM {o} WHERE {IN_PROJECTS} AND {in_window(OBSERVATIONS.event_time)}"
        window_column = OBSERVATIONS.event_time
        before_end = ""
    latest = (
        f"SELECT project_id, id, max(event_ts) FROM {o} WHERE {IN_PROJECTS} AND (project_id, id) IN ({candidates}) "
        "GROUP BY project_id, id"
    )
    # the traces of every version of the candidates: a superset of their latest versions' traces
    trace_ids = f"SELECT project_id, trace_id FROM {o} WHERE {IN_PROJECTS} AND (project_id, id) IN ({candidates})"
    picked = "".join(
        f"toNullable(`{column}`), " if type_.startswith("Nullable") else f"`{column}`, " for _, column, type_ in attributes
    )
    unpacked = "".join(f", _t.{i + 1} AS `_a{i}`" for i in range(len(attributes)))
    lookups = [_lookup(i, name, type_) for i, (name, _, type_) in enumerate(attributes)]
    per_trace = "".join(f", {value}" for value, _, _ in lookups)
    looked_up = "".join(f",\n                    {expression} AS `{name}`" for _, expression, name in lookups)
    invalid = invalid_utf8_count([(f"_a{i}", type_) for i, (_, _, type_) in enumerate(attributes)]) if attributes else "0"
    derived = "".join(f",\n            {c.expression} AS `{c.name}`" for c in metrics)
    expressions, names = payload(shape, columns, OBSERVATIONS.tombstone_columns)
    key_names = [f"_k{i}" for i in range(len(keys))]
    return f"""SELECT _window_index, _project_index, _row_hash, _tombstone, _invalid_utf8, {names}
FROM (
    SELECT _window_index, _project_index, _row_hash, is_deleted AS _tombstone, _invalid_utf8, {", ".join(key_names)},
        {expressions}
    FROM (
        SELECT * EXCEPT (event_ts, is_deleted), _version AS event_ts, _deleted AS is_deleted,
            {window_index(window_column)} AS _window_index
        FROM (
            SELECT
            greatest(`event_ts`, _t_version) AS _version,
            toUInt8(`is_deleted` OR _t_deleted) AS _deleted,
            {project_index()} AS _project_index,
            cityHash64(`id`, `event_ts`, _t_version) AS _row_hash,
            {invalid_utf8_count(stored)} + _t_invalid AS _invalid_utf8,
            {", ".join(f"{k} AS _k{i}" for i, k in enumerate(keys))},
            {cleaned(stored)}{derived}{"".join(f", `{name}`" for name, _ in trace_columns)}
            FROM (
                WITH (
                    SELECT groupArray((_t_id, _t_version, _t_deleted, {invalid}{per_trace}))
                    FROM (
                        SELECT concat(project_id, '/', id) AS _t_id, max(event_ts) AS _t_version,
                            argMax(({picked}is_deleted), (event_ts, is_deleted)) AS _t{unpacked},
                            _t.{len(attributes) + 1} AS _t_deleted
                        FROM {t}
                        WHERE {IN_PROJECTS} AND (project_id, id) IN ({trace_ids})
                        GROUP BY project_id, id
                    )
                ) AS _rows, arrayMap(r -> r.1, _rows) AS _ids
                SELECT *,
                    transform({_TRACE_KEY}, _ids, arrayMap(r -> r.2, _rows), toDateTime64(0, 3)) AS _t_version,
                    transform({_TRACE_KEY}, _ids, arrayMap(r -> r.3, _rows), 0) AS _t_deleted,
                    transform({_TRACE_KEY}, _ids, arrayMap(r -> r.4, _rows), 0) AS _t_invalid{looked_up}
                FROM {o}
                WHERE {IN_PROJECTS} AND (project_id, id, event_ts) IN ({latest}){before_end}
            )
        )
        WHERE {in_window(window_column)}
    )
)
ORDER BY {", ".join(key_names[:-1])}, {key_names[-1]} DESC
LIMIT 1 BY _k{keys.index("project_id")}, _k{keys.index("id")}
{settings(block_rows)}"""


def enriched_windows(database: str, mode: Mode, source: str) -> str:
    """The windows holding a line that new rows of `source` can have changed: those of the
    observations of the traces the rows are (or belong to), and, in incremental mode, those of
    these traces' versions (a line's version can be its trace's)."""
    o, t = qualified(database, "observations"), qualified(database, "traces")
    touched = new_rows(t) if source == "traces" else new_rows(o, "trace_id")
    column = "event_ts" if mode == "incremental" else OBSERVATIONS.event_time
    windows = [
        f"SELECT {window_index(column)} AS w FROM {o} "
        f"WHERE project_id = {PROJECT} AND {in_window(column)} AND trace_id IN ({touched})"
    ]
    if source == "observations":  # an observation's earlier versions, whichever trace they named
        windows.append(
            f"SELECT {window_index(column)} AS w FROM {o} "
            f"WHERE project_id = {PROJECT} AND {in_window(column)} AND id IN ({new_rows(o)})"
        )
    if mode == "incremental":
        windows.append(
            f"SELECT {window_index('event_ts')} AS w FROM {t} "
            f"WHERE project_id = {PROJECT} AND {in_window('event_ts')} AND id IN ({touched})"
        )
    return "SELECT DISTINCT w FROM (" + " UNION ALL ".join(windows) + ")"


TABLE = ExportedTable(
    name="enriched_observations",
    title="EnrichedObservation",
    description=(
        "Each observation's latest version with its latency metrics and its trace's latest attributes "
        "(trace_name, user_id, session_id, tags, release, trace_version, trace_metadata). Its event_ts is "
        "the greater of the observation's and the trace's; a deleted observation or trace is a tombstone."
    ),
    columns=OBSERVATIONS.columns,
    computed=METRICS,
    joined=TRACE_COLUMNS,
    tombstone_columns=OBSERVATIONS.tombstone_columns,
    sources=("observations", "traces"),
    change_sources=("observations", "traces"),
    snapshot_column=OBSERVATIONS.event_time,
    query=enriched_query,
    changed_windows=enriched_windows,
    default=False,
)
