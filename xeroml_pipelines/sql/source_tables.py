"""XeroML's ClickHouse tables, the export's sources: one definition per table yields its DDL and,
through the exported tables built on it (`xeroml_pipelines.tables`), the export's columns.

The column lists are XeroML's (the same as Langfuse's V3 schema). A column added here is created
by the demo and the tests and exported, with nothing else to edit.
"""

from __future__ import annotations

from dataclasses import dataclass

# The export's window is on event_ts, which is not in the sort key: a minmax skip index lets
# ClickHouse skip the granules of other days (docs/performance.md: the one-time DDL for an
# existing table).
EVENT_TS_INDEX = "INDEX event_ts_minmax event_ts TYPE minmax GRANULARITY 1"


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # ClickHouse's
    default: str | None = None
    description: str | None = None  # for the exported files' schemas
    large: bool = False  # prompts and completions: beyond what some warehouses' text type holds


@dataclass(frozen=True)
class SourceTable:
    name: str
    columns: tuple[Column, ...]
    event_time: str  # the record's own time: the window column of "snapshot" mode
    partition_by: str
    order_by: tuple[str, ...]

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


def _c(name: str, type_: str, default: str | None = None, description: str | None = None) -> Column:
    return Column(name, type_, default, description)


def _large(name: str) -> Column:
    return Column(name, "Nullable(String)", large=True)


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
        _large("input"),
        _large("output"),
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
        _large("input"),
        _large("output"),
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
        _c("value", "Float64", description="null for NaN/Infinity, which JSON cannot hold"),
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


def create_schema_sql(database: str) -> list[str]:
    """The statements that create XeroML's schema in `database` (idempotent)."""
    return [f"CREATE DATABASE IF NOT EXISTS `{database}`", *(t.ddl(database) for t in SOURCES.values())]
