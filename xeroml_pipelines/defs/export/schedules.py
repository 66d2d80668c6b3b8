"""Per export: a schedule that exports the partition that just closed, once its lag has passed,
and one that verifies the whole destination against its manifests (weekly by default)."""

from dagster import (
    AssetCheckKey,
    AssetSelection,
    DefaultScheduleStatus,
    JobDefinition,
    ScheduleDefinition,
    build_schedule_from_partitioned_job,
    define_asset_job,
)
from dagster._core.definitions.partitions.partitioned_schedule import UnresolvedPartitionedAssetScheduleDefinition
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from xeroml_pipelines.config import ExportConfig
from xeroml_pipelines.defs.keys import export_asset_key, partitions_for

# The checks each export run includes, on its partitions (the whole destination is verify.py's job).
RUN_CHECKS = ("files_match_manifests", "recount_matches_manifest")


def export_job_name(export: ExportConfig) -> str:
    return f"{export.name}_export"


def export_job(export: ExportConfig) -> UnresolvedAssetJobDefinition:
    keys = [export_asset_key(export, t) for t in export.tables]
    return define_asset_job(
        name=export_job_name(export),
        selection=AssetSelection.assets(*keys).without_checks()
        | AssetSelection.checks(*(AssetCheckKey(k, name) for k in keys for name in RUN_CHECKS)),
        partitions_def=partitions_for(export),
        description=f"Exports one partition (or a range) of every table of export {export.name!r}.",
    )


def build_export_schedule(
    export: ExportConfig, job: UnresolvedAssetJobDefinition
) -> ScheduleDefinition | UnresolvedPartitionedAssetScheduleDefinition:
    # Daily at 00:20 UTC (with the default 20 min lag) for yesterday; hourly at :20 for the last hour.
    return build_schedule_from_partitioned_job(
        job,
        name=f"{export.name}_{export.cadence}",
        default_status=DefaultScheduleStatus.RUNNING,
        minute_of_hour=export.lag_minutes % 60,
        hour_of_day=export.lag_minutes // 60 if export.cadence == "daily" else None,
    )


def build_verify_schedule(export: ExportConfig, job: JobDefinition) -> ScheduleDefinition:
    assert export.verify_cron is not None
    return ScheduleDefinition(
        name=f"{export.name}_verify_schedule",
        job=job,
        cron_schedule=export.verify_cron,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
    )
