"""One partitioned asset per exported table: `[<export name>, <table>]`.

An asset decides which rows belong to its partitions and hands the IO manager a stream naming
their source (the table's ClickHouse query); the IO manager of the export's destination writes it.
"""

import warnings
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    AssetSpec,
    BackfillPolicy,
    Backoff,
    BetaWarning,
    FreshnessPolicy,
    Jitter,
    RetryPolicy,
    asset,
)

from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.clickhouse.source import TableQuery
from xeroml_pipelines.config import ExportConfig
from xeroml_pipelines.config.exports import SOURCE_PREFIX
from xeroml_pipelines.defs.keys import (
    CLICKHOUSE_POOL,
    export_asset_key,
    io_manager_key,
    partitions_for,
    resource,
    source_asset_key,
)
from xeroml_pipelines.export.stream import ExportStream
from xeroml_pipelines.tables import exported_table
from xeroml_pipelines.windows import windows_for


def freshness_policy(export: ExportConfig) -> FreshnessPolicy:
    """Fresh when a materialization happened between a window's close and its deadline (close +
    lag + grace): the deadline recurs at that offset every cadence. Dagster judges the asset by its
    latest materialization (of any partition), so a backfill run in that interval counts too."""
    due = export.freshness_deadline_minutes % export.cadence_minutes
    hours = "*" if export.cadence == "hourly" else str(due // 60)
    return _cron_policy(f"{due % 60} {hours} * * *", export.freshness_deadline_minutes)


@cache
def _cron_policy(deadline_cron: str, lower_bound_minutes: int) -> FreshnessPolicy:
    # Building one walks the cron's ticks (5-15 ms): the tables of an export, and exports with
    # the same deadline, share one (it is immutable), so loading costs it once per deadline.
    return FreshnessPolicy.cron(deadline_cron=deadline_cron, lower_bound_delta=timedelta(minutes=lower_bound_minutes))


def _build(export: ExportConfig, table: str, resources: Mapping[str, Any]) -> AssetsDefinition:
    spec = exported_table(table)
    # lineage: the ClickHouse tables this table's query reads
    deps = [source_asset_key(source) for source in spec.sources]
    partitions_def = partitions_for(export)

    @asset(
        key=export_asset_key(export, table),
        partitions_def=partitions_def,
        io_manager_key=io_manager_key(export),
        # the export's IO manager is bound to its assets (see location.py); ClickHouse is shared
        resource_defs={io_manager_key(export): resources[io_manager_key(export)]},
        required_resource_keys={"clickhouse"},
        group_name=export.name,
        deps=deps,
        kinds={"clickhouse", "parquet" if export.format == "parquet" else "json"},
        description=spec.description + f" Project {export.project_id!r}, {export.mode} mode, {export.format} files.",
        metadata={"project_id": export.project_id, "mode": export.mode, "cadence": export.cadence},
        backfill_policy=BackfillPolicy.multi_run(max_partitions_per_run=export.max_partitions_per_run),
        pool=CLICKHOUSE_POOL,
        freshness_policy=freshness_policy(export),
        # Transient destination/ClickHouse failures are retried; permanent ones raise
        # Failure(allow_retries=False) and stop at once.
        retry_policy=RetryPolicy(
            max_retries=export.retries, delay=export.retry_delay_s, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
        )
        if export.retries
        else None,
    )
    def _export(context: AssetExecutionContext) -> ExportStream:
        clickhouse = resource(context.resources, "clickhouse", ClickHouseResource)
        windows = windows_for(partitions_def, context.partition_keys)
        settled_at = windows[-1].end + timedelta(minutes=export.lag_minutes)
        if datetime.now(UTC) < settled_at:
            # Rows ingested with an event_ts in this window may still be in flight; a later
            # re-run of this partition picks them up.
            context.log.warning(
                f"{table} {windows[-1].partition}: the window closes plus the {export.lag_minutes} min lag only at "
                f"{settled_at:%Y-%m-%d %H:%M} UTC; rows still in flight may be missing until this partition is re-run"
            )
        return ExportStream(
            export_name=export.name,
            project_id=export.project_id,
            table=table,
            mode=export.mode,
            windows=windows,
            source=TableQuery(clickhouse, table, export.mode, (export.project_id,), export.excluded(table)),
            exclude=export.excluded(table),
        )

    return _export


def build_export_assets(export: ExportConfig, resources: Mapping[str, Any]) -> list[AssetsDefinition]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BetaWarning)  # backfill_policy: the range path is ours and tested
        return [_build(export, table, resources) for table in export.tables]


def build_source_specs(exports: Sequence[ExportConfig]) -> list[AssetSpec]:
    """XeroML's ClickHouse tables the exports read, as external assets: where their lineage starts."""
    read = sorted({source for export in exports for table in export.tables for source in exported_table(table).sources})
    return [
        AssetSpec(
            source_asset_key(t), group_name=SOURCE_PREFIX, kinds={"clickhouse"}, description=f"XeroML's {t} table in ClickHouse"
        )
        for t in read
    ]
