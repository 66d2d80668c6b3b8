"""The late-data sensor: recounts recent partitions and re-exports those whose data changed.

Guarantee: a partition whose window closed between `lag_minutes` and `recheck_days` ago is
looked at every `recheck_interval_minutes`; if its rows or fingerprint differ from its manifest
(a row committed after the export, a record updated into another partition, a delete) it is
exported again. So within that horizon every file converges to the contract, at most one
interval late.

Recounting every recent partition on every tick would cost ClickHouse far more than the exports
themselves. A tick recounts only the partitions that rows added since the previous tick may have
changed (clickhouse/changes.py: read from the parts written since, a few milliseconds when
there are none) and the partitions that entered the horizon since; the first tick, or one on a
server that does not let us read `system.parts`, recounts them all.
"""

import json
from datetime import UTC, datetime, timedelta

from clickhouse_connect.driver.exceptions import DatabaseError
from dagster import DefaultSensorStatus, RunRequest, SensorDefinition, SensorEvaluationContext, SkipReason, sensor

from xeroml_pipelines.clickhouse.changes import Mark, changed_windows, marks
from xeroml_pipelines.clickhouse.errors import EmbeddedEngineBusy
from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.config import ExportConfig
from xeroml_pipelines.defs.export.checks import run_checks
from xeroml_pipelines.defs.keys import export_asset_key, open_destination, partitions_for, resource
from xeroml_pipelines.destinations.base import Destination
from xeroml_pipelines.export.manifest import read_manifest
from xeroml_pipelines.export.recount import recount
from xeroml_pipelines.tables import exported_table
from xeroml_pipelines.windows import Window, windows_for

# Runs and the sensor may run on hosts whose clocks differ by this much.
CLOCK_SKEW = timedelta(minutes=5)


def recent_windows(export: ExportConfig, now: datetime) -> tuple[Window, ...]:
    """Closed partitions whose window ended between `lag_minutes` and `recheck_days` ago."""
    partitions_def = partitions_for(export)
    settled = now - timedelta(minutes=export.lag_minutes)
    horizon = now - timedelta(days=export.recheck_days)
    keys = partitions_def.get_partition_keys(current_time=now)[-(export.recheck_days * 24 + 1) :]
    return tuple(w for w in windows_for(partitions_def, keys) if horizon <= w.end <= settled)


def build_late_data_sensor(export: ExportConfig) -> SensorDefinition:
    @sensor(
        name=f"{export.name}_late_data",
        asset_selection=[export_asset_key(export, t) for t in export.tables],
        minimum_interval_seconds=export.recheck_interval_minutes * 60,
        required_resource_keys={"clickhouse"},
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Re-exports partitions of {export.name!r} younger than {export.recheck_days} days "
        "whose data changed after export.",
    )
    def _sensor(context: SensorEvaluationContext) -> SkipReason | list[RunRequest]:
        windows = recent_windows(export, datetime.now(UTC))
        if not windows:
            return SkipReason("no partition inside the recheck horizon")
        layout = export.object_layout()
        # cursor: the parts marks of the previous tick, and the end of the horizon it covered
        cursor = json.loads(context.cursor) if context.cursor else {}
        # On the embedded engine a run may hold ClickHouse: try again next tick rather than wait.
        clickhouse = resource(context.resources, "clickhouse", ClickHouseResource).model_copy(update={"embedded_wait_s": 5})
        drifted: dict[str, list[str]] = {}
        recounted = unexported = 0
        try:
            with open_destination(export) as destination:
                marked_at = datetime.now(UTC)
                now_marks = _marks(clickhouse, export.tables)  # before the changes are read: nothing falls between
                for table in export.tables:
                    suspects = _suspects(clickhouse, destination, table, windows, cursor, now_marks)
                    recounted += len(suspects)
                    for group in _consecutive(suspects):
                        for counted, window in zip(
                            recount(clickhouse, export.project_id, table, export.mode, group), group, strict=True
                        ):
                            manifest = read_manifest(destination, layout.manifest_key(table, window))
                            # no manifest: never exported; the schedule or a backfill does that, not us
                            unexported += manifest is None
                            if manifest is not None and counted.drifted_from(manifest):
                                drifted.setdefault(window.partition, []).append(f"{table}@{counted.fingerprint}")
        except EmbeddedEngineBusy as e:
            return SkipReason(str(e))
        finally:
            clickhouse.close()
        state = {"marks": now_marks, "marked_at": marked_at.isoformat(), "horizon_end": windows[-1].end.isoformat()}
        context.update_cursor(json.dumps(state))
        requests = []
        for partition, changes in sorted(drifted.items()):
            tables = sorted(c.split("@")[0] for c in changes)
            context.log.info(f"{export.name} {partition}: data changed since export in {', '.join(tables)}; re-exporting")
            requests.append(
                RunRequest(
                    run_key=f"late:{partition}:" + ",".join(sorted(changes)),  # the same drift is requested once
                    partition_key=partition,
                    asset_selection=[export_asset_key(export, t) for t in tables],
                    # checked as every export run is: a load follows only files that passed
                    asset_check_keys=run_checks(export, tables),
                    tags={"xeroml/trigger": "late-data"},
                )
            )
        return requests or SkipReason(
            f"{len(windows)} recent partitions: {recounted - unexported} table partitions recounted match their manifests, "
            f"{unexported} not exported yet (left to the schedule or a backfill), "
            f"{len(windows) * len(export.tables) - recounted} unchanged since the previous tick"
        )

    def _suspects(
        clickhouse: ClickHouseResource,
        destination: Destination,
        table: str,
        windows: tuple[Window, ...],
        cursor: dict,
        now_marks: dict[str, Mark] | None,
    ) -> list[Window]:
        """The windows of `table` to recount: all on a first tick (or without marks); else those
        the rows added since the last tick may have changed, and those new in the horizon whose
        export began before the last tick (rows committed in between are below its marks)."""
        sources = exported_table(table).change_sources
        since: dict[str, Mark] = cursor.get("marks", {}) if now_marks else {}
        if now_marks is None or "marked_at" not in cursor or any(s not in since for s in sources):
            return list(windows)
        horizon_end, marked_at = (datetime.fromisoformat(cursor[k]) for k in ("horizon_end", "marked_at"))
        suspects = set()
        for window in windows:
            if window.end > horizon_end:
                manifest = read_manifest(destination, export.object_layout().manifest_key(table, window))
                started = datetime.fromisoformat(manifest.query_started_at) if manifest else None
                if started is not None and started < marked_at + CLOCK_SKEW:
                    suspects.add(window.partition)
        for source in sources:
            if now_marks[source] != since[source]:  # rows added or mutated since: which partitions?
                suspects |= changed_windows(clickhouse, export.project_id, table, export.mode, windows, source, since[source])
        return [w for w in windows if w.partition in suspects]

    return _sensor


def _marks(clickhouse: ClickHouseResource, tables: tuple[str, ...]) -> dict[str, Mark] | None:
    """The parts marks of the tables' ClickHouse tables; None where `system.parts` is not readable."""
    try:
        return marks(clickhouse, tables)
    except DatabaseError:
        return None


def _consecutive(windows: list[Window]) -> list[list[Window]]:
    """Runs of adjacent windows: one recount query each."""
    groups: list[list[Window]] = []
    for window in windows:
        if groups and groups[-1][-1].end == window.start:
            groups[-1].append(window)
        else:
            groups.append([window])
    return groups
