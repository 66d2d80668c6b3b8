"""The load jobs and, per export, its sensor: an export partition materialized by a run that
succeeded (its blocking files check passed) -> a run of its load job that loads that partition.

A sensor, not an automation condition on the load assets: Dagster (1.13) records a partitioned
check's result for a run's whole partition range, not per partition, so a condition waiting for
the blocking check (`all_deps_blocking_checks_passed`) never sees it pass for a partition that a
range run (a backfill) exported, and would never load a backfill."""

import json
from collections import defaultdict
from collections.abc import Sequence

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    AssetSelection,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    define_asset_job,
    sensor,
)

from xeroml_pipelines.config import ExportConfig
from xeroml_pipelines.defs.export.schedules import partitions_name
from xeroml_pipelines.defs.keys import export_asset_key, partitions_for, warehouse_asset_key

# A run whose outcome is known; a run missing from the instance (deleted) counts as finished
# and failed: nothing waits on it forever.
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED, None}


def load_job_name(export: ExportConfig) -> str:
    return f"load_{partitions_name(export)}"


def load_jobs(exports: Sequence[ExportConfig]) -> dict[str, object]:
    """The load job of each export with a warehouse: one per partitions definition (as the
    export jobs; a run selects one export's load assets)."""
    groups: dict[str, list[ExportConfig]] = {}
    for export in exports:
        if export.warehouse:
            groups.setdefault(load_job_name(export), []).append(export)
    jobs: dict[str, object] = {}
    for name, members in groups.items():
        job = define_asset_job(
            name=name,
            selection=AssetSelection.assets(*(warehouse_asset_key(e, t) for e in members for t in e.tables)),
            partitions_def=partitions_for(members[0]),
            description="Loads one partition (or a range) of an export's tables into its warehouse; a run selects one "
            f"export's load assets. Exports: {', '.join(e.name for e in members)}.",
        )
        jobs |= {e.name: job for e in members}
    return jobs


def _loaded_since(context: SensorEvaluationContext, load_key: AssetKey, partition: str, storage_id: int) -> bool:
    """The partition was loaded after that export materialization: in the same run (`xeroml
    export` runs the export and its load together) or since."""
    later = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=load_key, asset_partitions=[partition], after_storage_id=storage_id), limit=1
    )
    return bool(later.records)


def build_load_sensor(export: ExportConfig, job) -> SensorDefinition:
    watched = {export_asset_key(export, t): warehouse_asset_key(export, t) for t in export.tables}

    @sensor(
        name=f"{export.name}_warehouse_load",
        job=job,
        minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Loads each partition of export {export.name!r} into its warehouse once it is exported and its "
        "run (with its blocking files_match_manifests check) succeeded.",
    )
    def _sensor(context: SensorEvaluationContext):
        # cursor: the last materialization handled per watched asset (its event storage id)
        cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
        # partition -> {load asset: storage id of the export materialization that asks for it}
        loads: dict[str, dict[AssetKey, int]] = defaultdict(dict)
        outcome: dict[str, DagsterRunStatus | None] = {}  # per run: its status, once looked up
        for export_key, load_key in watched.items():
            name = export_key.to_user_string()
            records = context.instance.fetch_materializations(
                AssetRecordsFilter(asset_key=export_key, after_storage_id=cursor.get(name)), limit=1000, ascending=True
            ).records
            held: int | None = None  # the cursor stays before the oldest record of an unfinished run
            for record in records:
                if record.run_id not in outcome:
                    run = context.instance.get_run_by_id(record.run_id)
                    outcome[record.run_id] = run.status if run else None
                if outcome[record.run_id] not in FINISHED:
                    # its checks have not all run yet: read again next tick, while later runs'
                    # partitions are loaded (a request seen again keeps its run key: one run)
                    held = record.storage_id - 1 if held is None else held
                    continue
                # A run fails when the export's files disagree with their manifests (a blocking
                # check), or when any of its steps failed: its files are not loaded unchecked.
                succeeded = outcome[record.run_id] == DagsterRunStatus.SUCCESS
                if (
                    succeeded
                    and record.partition_key
                    and not _loaded_since(context, load_key, record.partition_key, record.storage_id)
                ):
                    loads[record.partition_key][load_key] = record.storage_id
                cursor[name] = record.storage_id if held is None else held
        for partition, requested in sorted(loads.items()):
            keys = sorted(requested, key=lambda k: k.to_user_string())
            yield RunRequest(
                # one run per new export materialization set: a re-export is loaded again
                run_key=f"{partition}:" + ",".join(f"{k.path[-1]}@{requested[k]}" for k in keys),
                partition_key=partition,
                asset_selection=keys,
                tags={"xeroml/trigger": "export-materialized"},
            )
        context.update_cursor(json.dumps(cursor))

    return _sensor
