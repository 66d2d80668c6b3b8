"""The late-data sensor: recounts recent partitions and re-exports those whose data changed.

Guarantee: a partition whose window closed between `lag_minutes` and `recheck_days` ago is
recounted every `recheck_interval_minutes`; if its rows or fingerprint differ from its manifest
(a row committed after the export, a record updated into another partition, a delete) it is
exported again. So within that horizon every file converges to the contract, at most one
interval late.
"""

from datetime import datetime, timedelta, timezone

from dagster import AssetKey, DefaultSensorStatus, RunRequest, SensorDefinition, SensorEvaluationContext, SkipReason, sensor

from xeroml_pipelines.clickhouse.resource import EmbeddedEngineBusy
from xeroml_pipelines.config import ExportConfig
from xeroml_pipelines.defs.export.assets import io_manager_key
from xeroml_pipelines.defs.export.partitions import partitions_for
from xeroml_pipelines.export.recount import recount
from xeroml_pipelines.export.window import Window


def recent_partitions(export: ExportConfig, now: datetime) -> list[tuple[str, Window]]:
    """Closed partitions whose window ended between `lag_minutes` and `recheck_days` ago."""
    partitions_def = partitions_for(export)
    settled = now - timedelta(minutes=export.lag_minutes)
    horizon = now - timedelta(days=export.recheck_days)
    out = []
    for key in partitions_def.get_partition_keys(current_time=now)[-(export.recheck_days * 24 + 1):]:
        tw = partitions_def.time_window_for_partition_key(key)
        if horizon <= tw.end <= settled:
            out.append((key, Window(tw.start, tw.end)))
    return out


def build_late_data_sensor(export: ExportConfig) -> SensorDefinition:
    io_key = io_manager_key(export)

    @sensor(
        name=f"{export.name}_late_data",
        asset_selection=[AssetKey([export.name, t]) for t in export.tables],
        minimum_interval_seconds=export.recheck_interval_minutes * 60,
        required_resource_keys={io_key, "clickhouse"},
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Re-exports partitions of {export.name!r} younger than {export.recheck_days} days whose data changed after export.",
    )
    def _sensor(context: SensorEvaluationContext):
        partitions = recent_partitions(export, datetime.now(timezone.utc))
        if not partitions:
            return SkipReason("no partition inside the recheck horizon")
        io = getattr(context.resources, io_key)
        # On the embedded engine a run may hold ClickHouse: try again next tick rather than wait.
        clickhouse = context.resources.clickhouse.model_copy(update={"embedded_wait_s": 5})
        drifted: dict[str, list[str]] = {}
        try:
            for table in export.tables:
                for counted, (key, window) in zip(recount(clickhouse, export.project_id, table, export.mode, partitions), partitions):
                    manifest = io.read_manifest(io.manifest_key(table, window))
                    # no manifest: never exported; the schedule or a backfill does that, not us
                    if manifest is not None and counted.drifted_from(manifest):
                        drifted.setdefault(key, []).append(f"{table}@{counted.fingerprint}")
        except EmbeddedEngineBusy as e:
            return SkipReason(str(e))
        finally:
            clickhouse.close()
        requests = []
        for key, changes in sorted(drifted.items()):
            tables = sorted(c.split("@")[0] for c in changes)
            context.log.info(f"{export.name} {key}: data changed since export in {', '.join(tables)}; re-exporting")
            requests.append(
                RunRequest(
                    run_key=f"late:{key}:" + ",".join(sorted(changes)),  # the same drift is requested once
                    partition_key=key,
                    asset_selection=[AssetKey([export.name, t]) for t in tables],
                    tags={"xeroml/trigger": "late-data"},
                )
            )
        return requests or SkipReason(f"{len(partitions)} recent partitions match their manifests")

    return _sensor
