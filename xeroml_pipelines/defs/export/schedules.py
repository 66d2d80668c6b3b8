"""The export jobs and, per export, a schedule that exports the partition that just closed, once
its lag has passed, and one that verifies the whole destination against its manifests (weekly by
default).

One job serves every export with the same partitions (cadence, start and end date), each run
selecting one export's assets: Dagster resolves each asset job against every asset of the code
location, so a job per export made loading quadratic in the number of exports.
"""

from collections.abc import Iterator, Sequence

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    JobDefinition,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    schedule,
)

from xeroml_pipelines.config import ExportConfig
from xeroml_pipelines.defs.export.checks import run_checks
from xeroml_pipelines.defs.export.verify import verify_run_config
from xeroml_pipelines.defs.keys import export_asset_key, partitions_for
from xeroml_pipelines.windows import closed_window, partition_key


def partitions_name(export: ExportConfig) -> str:
    """What the exports sharing a partitions definition share: `hourly_from_2025_01_01[_to_...]`."""
    end = f"_to_{export.end_date:%Y_%m_%d}" if export.end_date else ""
    return f"{export.cadence}_from_{export.start_date:%Y_%m_%d}{end}"


def export_job_name(export: ExportConfig) -> str:
    return f"export_{partitions_name(export)}"


def export_jobs(exports: Sequence[ExportConfig]) -> dict[str, object]:
    """The export job of each export's name: one per partitions definition."""
    groups: dict[str, list[ExportConfig]] = {}
    for export in exports:
        groups.setdefault(export_job_name(export), []).append(export)
    jobs: dict[str, object] = {}
    for name, members in groups.items():
        keys = [export_asset_key(e, t) for e in members for t in e.tables]
        job = define_asset_job(
            name=name,
            selection=AssetSelection.assets(*keys).without_checks()
            | AssetSelection.checks(*(k for e in members for k in run_checks(e))),
            partitions_def=partitions_for(members[0]),
            description="Exports one partition (or a range) of an export's tables, with its checks; a run selects "
            f"one export's assets. Exports: {', '.join(e.name for e in members)}.",
        )
        jobs |= {e.name: job for e in members}
    return jobs


def build_export_schedule(export: ExportConfig, job: object) -> ScheduleDefinition:
    # Daily at 00:20 UTC (with the default 20 min lag) for yesterday; hourly at :20 for the last hour.
    lag = export.lag_minutes
    cron = f"{lag % 60} * * * *" if export.cadence == "hourly" else f"{lag % 60} {lag // 60} * * *"

    @schedule(
        name=f"{export.name}_{export.cadence}",
        cron_schedule=cron,
        job=job,  # type: ignore[arg-type]
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"Exports the {export.cadence} partition of {export.name!r} that just closed (after {lag} min).",
    )
    def _schedule(context: ScheduleEvaluationContext) -> Iterator[RunRequest | SkipReason]:
        start = closed_window(export.cadence, context.scheduled_execution_time, lag)
        if start.date() < export.start_date or (export.end_date and start.date() > export.end_date):
            yield SkipReason(f"{start:%Y-%m-%d %H:%M} is outside {export.name!r}'s partitions")
            return
        yield RunRequest(
            run_key=f"{export.name}:{partition_key(export.cadence, start)}",
            partition_key=partition_key(export.cadence, start),
            asset_selection=[export_asset_key(export, t) for t in export.tables],
            asset_check_keys=run_checks(export),
        )

    return _schedule


def build_verify_schedule(export: ExportConfig, job: JobDefinition) -> ScheduleDefinition:
    assert export.verify_cron is not None
    return ScheduleDefinition(
        name=f"{export.name}_verify_schedule",
        job=job,
        cron_schedule=export.verify_cron,
        execution_timezone="UTC",
        run_config=verify_run_config(export),
        default_status=DefaultScheduleStatus.RUNNING,
    )
