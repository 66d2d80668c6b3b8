"""The late-data sensor: recounts recent partitions and re-exports those whose data changed.

Guarantee: a partition whose window closed between `lag_minutes` and `recheck_days` ago is
recounted every `recheck_interval_minutes`; if its rows or fingerprint differ from its manifest
(a row committed after the export, a record updated into another partition, a delete) it is
exported again. So within that horizon every file converges to the contract, at most one
interval late.
"""

from datetime import UTC, datetime, timedelta

from dagster import DefaultSensorStatus, RunRequest, SensorDefinition, SensorEvaluationContext, SkipReason, sensor

from xeroml_pipelines.clickhouse.errors import EmbeddedEngineBusy
from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.config import ExportConfig
from xeroml_pipelines.defs.keys import destination_key, export_asset_key, partitions_for, resource
from xeroml_pipelines.destinations.base import Destination
from xeroml_pipelines.export.manifest import read_manifest
from xeroml_pipelines.export.recount import recount
from xeroml_pipelines.windows import Window, windows_for


def recent_windows(export: ExportConfig, now: datetime) -> tuple[Window, ...]:
    """Closed partitions whose window ended between `lag_minutes` and `recheck_days` ago."""
    partitions_def = partitions_for(export)
    settled = now - timedelta(minutes=export.lag_minutes)
    horizon = now - timedelta(days=export.recheck_days)
    keys = partitions_def.get_partition_keys(current_time=now)[-(export.recheck_days * 24 + 1) :]
    return tuple(w for w in windows_for(partitions_def, keys) if horizon <= w.end <= settled)


def build_late_data_sensor(export: ExportConfig) -> SensorDefinition:
    key = destination_key(export)

    @sensor(
        name=f"{export.name}_late_data",
        asset_selection=[export_asset_key(export, t) for t in export.tables],
        minimum_interval_seconds=export.recheck_interval_minutes * 60,
        required_resource_keys={key, "clickhouse"},
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Re-exports partitions of {export.name!r} younger than {export.recheck_days} days "
        "whose data changed after export.",
    )
    def _sensor(context: SensorEvaluationContext) -> SkipReason | list[RunRequest]:
        windows = recent_windows(export, datetime.now(UTC))
        if not windows:
            return SkipReason("no partition inside the recheck horizon")
        destination = resource(context.resources, key, Destination)
        layout = export.object_layout()
        # On the embedded engine a run may hold ClickHouse: try again next tick rather than wait.
        clickhouse = resource(context.resources, "clickhouse", ClickHouseResource).model_copy(update={"embedded_wait_s": 5})
        drifted: dict[str, list[str]] = {}
        try:
            for table in export.tables:
                for counted, window in zip(
                    recount(clickhouse, export.project_id, table, export.mode, windows), windows, strict=True
                ):
                    manifest = read_manifest(destination, layout.manifest_key(table, window))
                    # no manifest: never exported; the schedule or a backfill does that, not us
                    if manifest is not None and counted.drifted_from(manifest):
                        drifted.setdefault(window.partition, []).append(f"{table}@{counted.fingerprint}")
        except EmbeddedEngineBusy as e:
            return SkipReason(str(e))
        finally:
            clickhouse.close()
        requests = []
        for partition, changes in sorted(drifted.items()):
            tables = sorted(c.split("@")[0] for c in changes)
            context.log.info(f"{export.name} {partition}: data changed since export in {', '.join(tables)}; re-exporting")
            requests.append(
                RunRequest(
                    run_key=f"late:{partition}:" + ",".join(sorted(changes)),  # the same drift is requested once
                    partition_key=partition,
                    asset_selection=[export_asset_key(export, t) for t in tables],
                    tags={"xeroml/trigger": "late-data"},
                )
            )
        return requests or SkipReason(f"{len(windows)} recent partitions match their manifests")

    return _sensor
