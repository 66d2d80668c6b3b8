"""XeroML's ClickHouse tables: one definition that yields both the DDL and the export projection.

The column lists are XeroML's (the same as Langfuse's V3 schema). Keeping the DDL and the
export's SELECT in one place means a column added here is created by the demo, the tests and
exported, with nothing else to edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from xeroml_pipelines.windows import Mode

TableName = Literal["traces", "observations", "scores", "sessions"]
ALL_TABLES: tuple[TableName, ...] = ("traces", "observations", "scores", "sessions")


# The export's window is on event_ts, which is not in the sort key: a minmax skip index lets
# ClickHouse skip the granules of other days (README, "Performance": the one-time DDL for an
# existing table).
EVENT_TS_INDEX = "INDEX event_ts_minmax event_ts TYPE minmax GRANULARITY 1"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    default: str | None = None


@dataclass(frozen=True)
class Computed:
    """An exported column that is not stored: derived per row from the stored ones."""

    name: str
    type: str  # the ClickHouse type of the value
    expression: str  # over the stored columns


@dataclass(frozen=True)
class SourceTable:
    name: str
    columns: tuple[Column, ...]
    event_time: str  # the record's own time: the window column of "snapshot" mode
    partition_by: str
    order_by: tuple[str, ...]
    computed: tuple[Computed, ...] = ()  # exported after the stored columns, in this order

    def ddl(self, database: str) -> str:
        cols = ",\n    ".join(f"`{c.name}` {c.type}" + (f" DEFAULT {c.default}" if c.default else "") for c in self.columns)
        return (
            f"CREATE TABLE IF NOT EXISTS `{database}`.`{self.name}` (\n    {cols},\n    {EVENT_TS_INDEX}\n)\n"
            f"ENGINE = ReplacingMergeTree(event_ts, is_deleted)\n"
            f"PARTITION BY {self.partition_by}\n"
            f"ORDER BY ({', '.join(self.order_by)})"
        )

    @property
    def time_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.type.startswith(("DateTime64", "Nullable(DateTime64")))

    @property
    def tombstone_columns(self) -> tuple[str, ...]:
        """What a tombstone keeps: identity and time, never the deleted content."""
        return ("id", "project_id", *self.time_columns, "is_deleted")


def _c(name: str, type_: str, default: str | None = None) -> Column:
    return Column(name, type_, default)


_STR = "String"
_NSTR = "Nullable(String)"
_TS = "DateTime64(3)"
_STR_MAP = "Map(LowCardinality(String), String)"

TRACES = SourceTable(
    name="traces",
    columns=(
        _c("id", _STR),
        _c("timestamp", _TS),
        _c("name", _STR),
        _c("user_id", _NSTR),
        _c("metadata", _STR_MAP),
        _c("release", _NSTR),
        _c("version", _NSTR),
        _c("project_id", _STR),
        _c("environment", "LowCardinality(String)", "'default'"),
        _c("public", "Bool"),
        _c("bookmarked", "Bool"),
        _c("tags", "Array(String)"),
        _c("input", _NSTR),
        _c("output", _NSTR),
        _c("session_id", _NSTR),
        _c("created_at", _TS),
        _c("updated_at", _TS),
        _c("event_ts", _TS),
        _c("is_deleted", "UInt8"),
    ),
    event_time="timestamp",
    partition_by="toYYYYMM(timestamp)",
    order_by=("project_id", "toDate(timestamp)", "id"),
)

OBSERVATIONS = SourceTable(
    name="observations",
    columns=(
        _c("id", _STR),
        _c("trace_id", _STR),
        _c("project_id", _STR),
        _c("environment", "LowCardinality(String)"),
        _c("type", "LowCardinality(String)"),
        _c("parent_observation_id", _NSTR),
        _c("start_time", _TS),
        _c("end_time", "Nullable(DateTime64(3))"),
        _c("name", _STR),
        _c("metadata", _STR_MAP),
        _c("level", "LowCardinality(String)"),
        _c("status_message", _NSTR),
        _c("version", _NSTR),
        _c("input", _NSTR),
        _c("output", _NSTR),
        _c("provided_model_name", _NSTR),
        _c("internal_model_id", _NSTR),
        _c("model_parameters", _NSTR),
        _c("provided_usage_details", "Map(LowCardinality(String), UInt64)"),
        _c("usage_details", "Map(LowCardinality(String), UInt64)"),
        _c("provided_cost_details", "Map(LowCardinality(String), Decimal64(12))"),
        _c("cost_details", "Map(LowCardinality(String), Decimal64(12))"),
        _c("total_cost", "Nullable(Decimal64(12))"),
        _c("completion_start_time", "Nullable(DateTime64(3))"),
        _c("prompt_id", _NSTR),
        _c("prompt_name", _NSTR),
        _c("prompt_version", "Nullable(UInt16)"),
        _c("created_at", _TS),
        _c("updated_at", _TS),
        _c("event_ts", _TS),
        _c("is_deleted", "UInt8"),
    ),
    event_time="start_time",
    partition_by="toYYYYMM(start_time)",
    order_by=("project_id", "type", "toDate(start_time)", "id"),
    # Latency and time to first token, in milliseconds; null when the later time is missing.
    computed=(
        Computed("latency_ms", "Nullable(Int64)", "toUnixTimestamp64Milli(`end_time`) - toUnixTimestamp64Milli(`start_time`)"),
        Computed(
            "time_to_first_token_ms",
            "Nullable(Int64)",
            "toUnixTimestamp64Milli(`completion_start_time`) - toUnixTimestamp64Milli(`start_time`)",
        ),
    ),
)

SCORES = SourceTable(
    name="scores",
    columns=(
        _c("id", _STR),
        _c("timestamp", _TS),
        _c("project_id", _STR),
        _c("environment", "LowCardinality(String)"),
        _c("trace_id", _NSTR),
        _c("session_id", _NSTR),
        _c("dataset_run_id", _NSTR),
        _c("observation_id", _NSTR),
        _c("name", _STR),
        _c("value", "Float64"),
        _c("source", _STR),
        _c("comment", _NSTR),
        _c("metadata", _STR_MAP),
        _c("author_user_id", _NSTR),
        _c("config_id", _NSTR),
        _c("data_type", _STR),
        _c("string_value", _NSTR),
        _c("queue_id", _NSTR),
        _c("created_at", _TS),
        _c("updated_at", _TS),
        _c("event_ts", _TS),
        _c("is_deleted", "UInt8"),
    ),
    event_time="timestamp",
    partition_by="toYYYYMM(timestamp)",
    order_by=("project_id", "toDate(timestamp)", "name", "id"),
)

SOURCES: dict[str, SourceTable] = {t.name: t for t in (TRACES, OBSERVATIONS, SCORES)}

# The columns of an exported session (aggregated from traces and observations, see queries).
SESSION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "String"),
    ("project_id", "String"),
    ("environments", "Array(String)"),
    ("user_ids", "Array(String)"),
    ("first_trace_at", "DateTime64(3)"),
    ("last_trace_at", "DateTime64(3)"),
    ("trace_count", "UInt64"),
    ("trace_ids", "Array(String)"),
    ("tags", "Array(String)"),
    ("total_cost", "Float64"),
    ("usage_details", "Map(String, UInt64)"),
    ("event_ts", "DateTime64(3)"),
    ("is_deleted", "UInt8"),
)

# A session tombstone keeps its identity and version, nothing aggregated from deleted traces.
SESSION_TOMBSTONE_COLUMNS: tuple[str, ...] = ("id", "project_id", "event_ts", "is_deleted")


def create_schema_sql(database: str) -> list[str]:
    """The statements that create XeroML's schema in `database` (idempotent)."""
    return [f"CREATE DATABASE IF NOT EXISTS `{database}`", *(t.ddl(database) for t in SOURCES.values())]


def exported_columns(table: str) -> tuple[str, ...]:
    """The columns of a table's lines, in file order."""
    if table == "sessions":
        return tuple(name for name, _ in SESSION_COLUMNS)
    source = SOURCES[table]
    return (*(c.name for c in source.columns), *(c.name for c in source.computed))


def tombstone_columns(table: str) -> tuple[str, ...]:
    """The columns a tombstone keeps; every other one is null."""
    return SESSION_TOMBSTONE_COLUMNS if table == "sessions" else SOURCES[table].tombstone_columns


def required_columns(table: str, mode: Mode) -> tuple[str, ...]:
    """What every line keeps, whatever a field selection excludes: the record's identity, its
    version, the delete flag, and the column its window is on."""
    required: tuple[str, ...] = ("id", "project_id", "event_ts", "is_deleted")
    if mode == "snapshot" and table != "sessions":
        required += (SOURCES[table].event_time,)
    return required
