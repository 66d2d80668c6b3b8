"""The catch-up sensor: the windows registered exports missed (their destination failed, or the
platform had disabled them and they are enabled again), exported again oldest first, each run for
only the exports that missed that window."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from dagster import DefaultSensorStatus, RunRequest, SensorDefinition, SensorEvaluationContext, SkipReason, sensor

from xeroml_pipelines.config.fleet import FleetConfig
from xeroml_pipelines.defs.fleet.keys import fleet_asset_key, fleet_job_name
from xeroml_pipelines.defs.fleet.resources import SCOPE_KEY, RegistryResource
from xeroml_pipelines.defs.fleet.schedules import SHARD_TAG
from xeroml_pipelines.registry.runs import Missed, due_missed, shard_of

CATCH_UP_TAG = "xeroml/catch-up"


def build_catch_up_sensor(fleet: FleetConfig, jobs: list) -> SensorDefinition:
    @sensor(
        name="fleet_catch_up",
        jobs=jobs,
        minimum_interval_seconds=300,
        default_status=DefaultSensorStatus.RUNNING,
        description="Exports again the windows registered exports missed, oldest first.",
    )
    def _catch_up(context: SensorEvaluationContext, xeroml_registry: RegistryResource) -> Iterator[RunRequest | SkipReason]:
        registry = xeroml_registry.open()
        try:
            missed = due_missed(registry)
            projects = {r.name: r.project_id for r in registry.listing()}
        finally:
            registry.close()
        runs: dict[tuple[str, str, int], list[Missed]] = {}
        for m in missed:
            if m.cadence in fleet.cadences and m.table in fleet.tables and m.name in projects:
                runs.setdefault((m.cadence, m.partition, shard_of(projects[m.name], fleet.shards)), []).append(m)
        if not runs:
            yield SkipReason("no missed window is due")
            return
        for (cadence, partition, shard), rows in list(runs.items())[: fleet.catch_up_runs]:  # oldest windows first
            names = sorted({m.name for m in rows})
            tables = [t for t in fleet.tables if any(m.table == t for m in rows)]
            attempt = hashlib.sha256(repr(sorted((m.name, m.table, m.attempts) for m in rows)).encode()).hexdigest()[:12]
            yield RunRequest(
                run_key=f"catch-up:{cadence}:{partition}:{shard}:{attempt}",
                job_name=fleet_job_name(cadence),
                partition_key=partition,
                asset_selection=[fleet_asset_key(cadence, shard, t) for t in tables],
                run_config={"resources": {SCOPE_KEY: {"config": {"projects": names}}}},
                tags={SHARD_TAG: str(shard), CATCH_UP_TAG: "true"},
            )

    return _catch_up
