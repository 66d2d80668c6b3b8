"""The exports a deployment runs: the ClickHouse source and one entry per export."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Collection
from datetime import date
from itertools import pairwise

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.config.base import Strict, TableName, distinct, not_in_future
from xeroml_pipelines.config.destinations import Destination
from xeroml_pipelines.config.fleet import FleetConfig
from xeroml_pipelines.config.warehouses import WarehouseConfig
from xeroml_pipelines.export.formats import Codec, FileFormat
from xeroml_pipelines.export.layout import Layout, LayoutStyle
from xeroml_pipelines.identifiers import EnvVarName, validate_identifier, validate_project_id
from xeroml_pipelines.tables import DEFAULT_TABLES, exported_table
from xeroml_pipelines.windows import Cadence, Mode

# the asset keys of XeroML's ClickHouse tables begin with it (defs/keys.py): no export takes the name
SOURCE_PREFIX = "clickhouse"


class ExportConfig(Strict):
    name: str
    project_id: str
    destination: Destination
    cadence: Cadence = "daily"
    mode: Mode = "incremental"
    format: FileFormat = Field(default="jsonl", description="jsonl: one JSON line per record; parquet: typed columns")
    compression: Codec | None = Field(
        default=None,
        description="jsonl: none (default), gzip or zstd, of the whole file; parquet: zstd (default), snappy, gzip or none",
    )
    layout: LayoutStyle = Field(
        default="dated", description="dated: {table}/2025-01-15.jsonl; hive: {table}/date=2025-01-15/data.jsonl"
    )
    tables: tuple[TableName, ...] = DEFAULT_TABLES
    exclude: dict[TableName, tuple[str, ...]] = Field(
        default_factory=dict, description="Per table, columns left out of its files, e.g. {traces: [input, output, metadata]}"
    )
    start_date: date
    end_date: date | None = Field(
        default=None, description="Last partition's day, for data that stops (a demo, a migrated project); default: none"
    )
    lag_minutes: int = Field(default=20, ge=0, description="Wait after a window closes before exporting it")
    freshness_grace_minutes: int | None = Field(
        default=None,
        ge=1,
        description="Freshness: a partition still missing lag + grace after its window closes turns the export red "
        "(default: 60, or what the cadence leaves after the lag)",
    )
    retries: int = Field(default=3, ge=0, le=10, description="Step retries after a transient failure (throttling, outage)")
    retry_delay_s: float = Field(default=30, ge=0, description="First retry delay; doubles each time, with jitter")
    recheck_days: int = Field(
        default=7, ge=0, le=90, description="Late data: partitions younger than this are recounted (0: never)"
    )
    recheck_interval_minutes: int = Field(default=60, ge=1, description="Late data: how often they are recounted")
    verify_cron: str | None = Field(
        default="30 3 * * 0",
        description="When the whole destination is checked against every manifest (cron, UTC; default Sundays "
        "03:30; null: only by `xeroml verify`)",
    )
    max_partitions_per_run: int = Field(
        default=31,
        ge=1,
        le=744,
        description="Backfills: partitions exported by one run (one ClickHouse scan per table for the range)",
    )
    warehouse: WarehouseConfig | None = Field(default=None, description="Where a sensor loads each exported partition")

    @property
    def codec(self) -> Codec:
        return self.compression or ("zstd" if self.format == "parquet" else "none")

    def object_layout(self) -> Layout:
        """Where this export's objects live under its destination."""
        return Layout(prefix=self.destination.prefix, compression=self.codec, style=self.layout, file_format=self.format)

    @model_validator(mode="after")
    def _codec_fits_format(self) -> ExportConfig:
        if self.format == "jsonl" and self.compression == "snappy":
            raise ValueError("compression: snappy is a Parquet codec; for format: jsonl choose none, gzip or zstd")
        return self

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if v == SOURCE_PREFIX:
            raise ValueError(f"{v!r} names the ClickHouse tables' assets ([{v}, traces], ...): choose another name")
        return validate_identifier(v, "name")

    @field_validator("project_id")
    @classmethod
    def _project(cls, v: str) -> str:
        return validate_project_id(v)

    @field_validator("tables")
    @classmethod
    def _tables(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        distinct(v, "table")
        return v

    @field_validator("exclude")
    @classmethod
    def _exclude(cls, v: dict[str, tuple[str, ...]], info: ValidationInfo) -> dict[str, tuple[str, ...]]:
        mode = info.data.get("mode", "incremental")
        for table, names in v.items():
            if table not in info.data.get("tables", DEFAULT_TABLES):
                raise ValueError(f"{table}: the export does not export this table")
            spec = exported_table(table)
            known = spec.column_names
            for name in names:
                if name not in known:
                    raise ValueError(f"{table}: no column {name!r} (columns: {', '.join(known)})")
                if name in spec.required_columns(mode):
                    raise ValueError(
                        f"{table}: {name!r} can never be excluded (every line keeps {', '.join(spec.required_columns(mode))})"
                    )
            if len(set(names)) != len(names):
                raise ValueError(f"{table}: a column is listed twice")
        return v

    def excluded(self, table: str) -> frozenset[str]:
        return frozenset(name for t, names in self.exclude.items() if t == table for name in names)

    @model_validator(mode="after")
    def _warehouse_reads_the_destination(self) -> ExportConfig:
        if self.warehouse and self.warehouse.type == "redshift" and self.destination.provider != "s3":
            raise ValueError("a redshift warehouse COPYs from S3: the export's destination must be provider: s3")
        if self.warehouse and self.warehouse.type == "bigquery" and self.destination.provider != "gcs":
            raise ValueError("a bigquery warehouse loads from GCS: the export's destination must be provider: gcs")
        return self

    @model_validator(mode="after")
    def _lag_fits_cadence(self) -> ExportConfig:
        if self.cadence == "hourly" and self.lag_minutes >= 60:
            raise ValueError("lag_minutes must be under 60 for an hourly export (the next hour's run would start first)")
        if self.cadence == "daily" and self.lag_minutes >= 24 * 60:
            raise ValueError("lag_minutes must be under 1440 for a daily export")
        if self.lag_minutes + (self.freshness_grace_minutes or 0) > self.cadence_minutes:
            raise ValueError(
                f"lag_minutes + freshness_grace_minutes must be at most {self.cadence_minutes} (the {self.cadence} cadence): "
                "a partition is due before the next window closes"
            )
        return self

    @property
    def cadence_minutes(self) -> int:
        return 60 if self.cadence == "hourly" else 24 * 60

    @property
    def freshness_deadline_minutes(self) -> int:
        """Minutes after a window closes by which its partition must be exported."""
        grace = self.freshness_grace_minutes or min(60, self.cadence_minutes - self.lag_minutes)
        return self.lag_minutes + grace

    @field_validator("verify_cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        from dagster import DagsterInvalidDefinitionError, ScheduleDefinition

        if v is None:
            return v
        try:  # Dagster's own cron rules, through its public API: a schedule refuses a bad one
            ScheduleDefinition(name="verify_cron", cron_schedule=v, job_name="verify_cron")
        except DagsterInvalidDefinitionError:
            raise ValueError(f"{v!r} is not a cron schedule (five fields, e.g. '30 3 * * 0')") from None
        return v

    @field_validator("start_date")
    @classmethod
    def _start(cls, v: date) -> date:
        return not_in_future(v)

    @field_validator("end_date")
    @classmethod
    def _end(cls, v: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("start_date")
        if v is not None and start is not None and v < start:
            raise ValueError(f"end_date {v} is before start_date {start}")
        return v


class AlertsConfig(Strict):
    webhook_url_env: EnvVarName = Field(
        description="Name of the env var holding a Slack incoming-webhook URL (or any endpoint taking Slack's JSON)"
    )


class XeroMLConfig(Strict):
    clickhouse: ClickHouseResource
    exports: tuple[ExportConfig, ...] = ()
    fleet: FleetConfig | None = Field(default=None, description="Runs every export registered with `xeroml destinations`")
    alerts: AlertsConfig | None = Field(default=None, description="Where freshness and fleet alerts are posted")

    def missing_secrets(self, export_names: Collection[str] | None = None) -> list[str]:
        """Each `*_env` field (of ClickHouse, the alerts and the exports named) whose environment
        variable is unset or empty, as `NAME (path.to.field)`: checked before any run starts,
        where Dagster would only fail inside the run."""
        missing: list[str] = []

        def walk(model: object, path: str) -> None:
            if isinstance(model, BaseModel):
                for name in type(model).model_fields:
                    walk(getattr(model, name), f"{path}.{name}" if path else name)
            elif isinstance(model, tuple):
                for i, item in enumerate(model):
                    if not isinstance(item, ExportConfig) or export_names is None or item.name in export_names:
                        walk(item, f"{path}.{i}")
            elif path.endswith("_env") and isinstance(model, str) and not os.environ.get(model):
                missing.append(f"{model} ({path})")

        walk(self, "")
        return missing

    def with_format(self, file_format: FileFormat) -> XeroMLConfig:
        """Every export writing `file_format` files (validated again: a codec may not fit it)."""
        exports = [{**e.model_dump(), "format": file_format} for e in self.exports]
        return XeroMLConfig.model_validate({**self.model_dump(), "exports": exports})

    @model_validator(mode="after")
    def _distinct(self) -> XeroMLConfig:
        if not self.exports and not self.fleet:
            raise ValueError("declare at least one export, or the fleet (fleet: {start_date: ...})")
        dupes = sorted(n for n, count in Counter(e.name for e in self.exports).items() if count > 1)
        if dupes:
            raise ValueError(f"export names must be unique: {dupes}")
        # Two exports writing one location, or one inside the other's, would overwrite or pollute
        # each other's files. Sorted, a location is followed by those inside it: comparing
        # neighbours finds an overlap in O(N log N), not by comparing every pair.
        where = sorted((e.destination.location.rstrip("/") + "/", e.name) for e in self.exports)
        for (outer, a), (inner, b) in pairwise(where):
            if inner.startswith(outer):
                raise ValueError(f"exports {a!r} and {b!r} write to overlapping locations {outer} and {inner}")
        return self
