"""Per cadence one job and one schedule: when a window has closed (plus the lag), a run per shard
holding an enabled export of that cadence, all shards in parallel."""

from __future__ import annotations

from collections.abc import Iterator

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    schedule,
)

from xeroml_pipelines.config.fleet import FleetConfig
from xeroml_pipelines.defs.fleet.keys import fleet_asset_key, fleet_job_name, fleet_partitions
from xeroml_pipelines.defs.fleet.resources import RegistryResource
from xeroml_pipelines.registry.runs import shard_of
from xeroml_pipelines.windows import Cadence, closed_window, partition_key

SHARD_TAG = "xeroml/shard"


def fleet_job(fleet: FleetConfig, cadence: Cadence):
    keys = [fleet_asset_key(cadence, shard, t) for shard in range(fleet.shards) for t in fleet.tables]
    return define_asset_job(
        name=fleet_job_name(cadence),
        selection=AssetSelection.assets(*keys),
        partitions_def=fleet_partitions(fleet, cadence),
        description=f"Exports a window (or a range) of every registered {cadence} export; one run per shard.",
    )


def build_fleet_schedule(fleet: FleetConfig, cadence: Cadence, job) -> ScheduleDefinition:
    lag = fleet.lag_minutes
    cron = f"{lag} * * * *" if cadence == "hourly" else f"{lag} 0 * * *"

    @schedule(
        name=fleet_job_name(cadence),
        cron_schedule=cron,
        job=job,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
    )
    def _schedule(context: ScheduleEvaluationContext, xeroml_registry: RegistryResource) -> Iterator[RunRequest | SkipReason]:
        start = closed_window(cadence, context.scheduled_execution_time, lag)
        if start.date() < fleet.start_date:
            yield SkipReason(f"the window {start:%Y-%m-%d %H:%M} is before the fleet's start_date {fleet.start_date}")
            return
        registry = xeroml_registry.open()
        try:
            projects = {r.project_id for r in registry.listing() if r.enabled and r.cadence == cadence}
        finally:
            registry.close()
        shards = sorted({shard_of(p, fleet.shards) for p in projects})
        if not shards:
            yield SkipReason(f"no enabled {cadence} export is registered")
            return
        key = partition_key(cadence, start)
        for shard in shards:
            yield RunRequest(
                run_key=f"{key}:{shard}",
                partition_key=key,
                asset_selection=[fleet_asset_key(cadence, shard, t) for t in fleet.tables],
                tags={SHARD_TAG: str(shard)},
            )

    return _schedule
