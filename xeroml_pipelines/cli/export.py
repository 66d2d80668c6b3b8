"""`xeroml export` and `xeroml demo`: materialize a date range of exports as a backfill does,
checked before any work starts, reported one plain line per partition."""

from __future__ import annotations

import sys
import threading
import time as clock
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xeroml_pipelines.cli.instance import fail_orphaned_runs, process_tag, project_instance

if TYPE_CHECKING:
    from xeroml_pipelines.config import ExportConfig, XeroMLConfig

# One summary line per partition here; the full event log stays in the Dagster instance.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
# The tags a backfill gives a run of a partition range (Dagster's documented run tags): Dagster's
# own `dagster asset materialize --partition-range` runs a range the same way, these tags and
# the selected assets on the job.
RANGE_START_TAG, RANGE_END_TAG = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


class UsageError(Exception):
    """A mistake in the command (exit code 2): said in one line, nothing is run."""


def partition_keys(export: ExportConfig, first: date, last: date) -> list[str]:
    """The export's partitions whose window starts on a day from `first` to `last`."""
    from dagster import TimeWindow

    from xeroml_pipelines.defs.keys import partitions_for

    start = datetime.combine(first, time(), UTC)
    end = datetime.combine(last + timedelta(days=1), time(), UTC)
    return list(partitions_for(export).get_partition_keys_in_time_window(TimeWindow(start, end)))


def by_project(config: XeroMLConfig, names: list[str] | None, projects: list[str] | None) -> list[str] | None:
    """The export names `--export` and `--project` select (both: the exports that match both);
    None for every export. An unknown project is a `UsageError`, never an empty success."""
    if not projects:
        return names
    known = sorted({e.project_id for e in config.exports})
    if unknown := [p for p in projects if p not in known]:
        raise UsageError(
            f"no export of project {', '.join(map(repr, unknown))}; the configuration's projects: {', '.join(known)}"
        )
    selected = [e.name for e in config.exports if e.project_id in projects and (not names or e.name in names)]
    if not selected:
        raise UsageError(f"no export is both among --export {', '.join(names or [])} and of project {', '.join(projects)}")
    return selected


def plan(config: XeroMLConfig, names: list[str] | None, first: date, last: date) -> list[tuple[ExportConfig, list[str]]]:
    """Each selected export with its partitions from `first` to `last`; a `UsageError` for an
    unknown name, a reversed range, or days the export has no partitions for."""
    from xeroml_pipelines.defs.keys import partitions_for

    known = [e.name for e in config.exports]
    unknown = [n for n in names or [] if n not in known]
    if unknown:
        raise UsageError(f"no export named {', '.join(map(repr, unknown))}; the configuration has: {', '.join(known)}")
    if last < first:
        raise UsageError(f"the range ends before it starts: {first} .. {last} (give the earlier day first)")
    selected = []
    for export in config.exports:
        if names and export.name not in names:
            continue
        partitions_def = partitions_for(export)
        newest = partitions_def.get_last_partition_key()
        oldest = export.start_date
        valid = f"{oldest} .. {newest[:10]}" if newest else "none yet"
        if first < oldest or newest is None or last.isoformat() > newest[:10]:
            raise UsageError(
                f"export {export.name!r} has no partitions for {first} .. {last}: its partitions are {valid} "
                f"(from start_date to the last {export.cadence} window that has closed)"
            )
        selected.append((export, partition_keys(export, first, last)))
    return selected


@dataclass
class Progress:
    """Partitions done out of all, and every table partition committed so far: its rows and
    stored bytes, and the rate since the command started."""

    total: int
    done: int = 0
    rows: int = 0
    stored: int = 0
    started: float = field(default_factory=clock.monotonic)

    def line(self) -> str:
        seconds = max(clock.monotonic() - self.started, 1e-9)
        return (
            f"[{self.done}/{self.total}] {self.rows:,} rows, {self.stored / 1e6:,.1f} MB "
            f"in {seconds:,.1f} s ({self.rows / seconds:,.0f} rows/s)"
        )


class Commits:
    """The export's table partitions committed since it was created, read from the instance's
    event log as the run goes (the run executes on another thread)."""

    def __init__(self, instance: Any, keys: list[Any]) -> None:
        from dagster import AssetRecordsFilter

        self._instance, self._filter = instance, AssetRecordsFilter
        self._after = {key: self._latest(key) for key in keys}

    def _latest(self, key: Any) -> int:
        records = self._instance.fetch_materializations(key, limit=1).records
        return records[0].storage_id if records else 0

    def new(self) -> list[tuple[str, str, int, int]]:
        """(partition, table, rows, bytes) of each commit not returned before."""
        found = []
        for key, after in self._after.items():
            result = self._instance.fetch_materializations(
                self._filter(asset_key=key, after_storage_id=after), limit=10_000, ascending=True
            )
            for record in result.records:
                m = record.asset_materialization
                if m is not None and m.partition and "rows" in m.metadata:
                    found.append((m.partition, key.path[-1], int(m.metadata["rows"].value), int(m.metadata["bytes"].value)))
                self._after[key] = record.storage_id
        return found


def failure_line(result: Any, verbose: bool) -> str:
    """The one line that says why a run failed (its stack trace with `verbose`)."""
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        if event.step_failure_data.user_failure_data is not None:  # Failure(description=...)
            cause = event.step_failure_data.user_failure_data.description or error.message
        else:
            # Dagster wraps the exception of the step: its first cause is ours
            inner = error
            while inner.cause is not None and inner.cls_name.startswith("Dagster"):
                inner = inner.cause
            cause = inner.message
        if verbose:
            print(error.to_string(), file=sys.stderr)
        kind, sep, text = str(cause).partition(": ")
        if sep and " " not in kind:  # "package.module.SomeError: the message": the message
            cause = text
        return " ".join(str(cause).split())
    return "the run failed (see the Dagster event log)"


def _on_worker(execute: Callable[[], Any], report: Callable[[], None]) -> Any:
    """`execute` (a run) on a worker thread while this one calls `report` twice a second."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(execute())
        except BaseException as e:  # noqa: BLE001 - re-raised on the calling thread
            outcome.append(e)

    worker = threading.Thread(target=run, name="xeroml-run")
    worker.start()
    while worker.is_alive():
        worker.join(timeout=0.5)
        report()
    report()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def _run_group(export: ExportConfig, group: list[str], defs: Any, instance: Any, progress: Progress, verbose: bool) -> bool:
    """The export job's run of `group`'s partitions (its checks included), each partition's
    line printed when its last table commits; then, if it succeeded, the load job's run of them
    (what the load sensor does in a deployment). True if both succeeded."""
    from xeroml_pipelines.defs.export.checks import BLOCKING
    from xeroml_pipelines.defs.export.schedules import export_job_name
    from xeroml_pipelines.defs.keys import export_asset_key, warehouse_asset_key
    from xeroml_pipelines.defs.warehouse.sensors import load_job_name

    # As a backfill's run of a range: one ClickHouse scan per table, one file and manifest per partition.
    tags = {RANGE_START_TAG: group[0], RANGE_END_TAG: group[-1], **process_tag()}
    commits = Commits(instance, [export_asset_key(export, t) for t in export.tables])
    exported: dict[str, dict[str, int]] = {key: {} for key in group}  # rows per table

    def report() -> None:
        for partition, table, rows, size in commits.new():
            if partition not in exported:
                continue
            exported[partition][table] = rows
            progress.rows += rows
            progress.stored += size
            if len(exported[partition]) == len(export.tables):  # the partition's last table
                progress.done += 1
                summary = " ".join(f"{t}={exported[partition][t]}" for t in export.tables)
                print(f"{export.name} {partition}: ok {summary}  {progress.line()}", flush=True)

    def run(job_name: str, assets: list[Any]) -> Any:
        # exports with the same partitions share a job: the run selects this export's assets, and
        # with them their checks, as a backfill of them does
        job = defs.resolve_job_def(job_name)
        return job.execute_in_process(
            instance=instance, tags=tags, run_config=QUIET, raise_on_error=False, asset_selection=assets
        )

    keys = [export_asset_key(export, t) for t in export.tables]
    result = _on_worker(lambda: run(export_job_name(export), keys), report)
    failed_checks = [e for e in result.get_asset_check_evaluations() if not e.passed]
    for evaluation in failed_checks:
        what = f"{evaluation.asset_key.path[-1]} {evaluation.check_name}"
        print(f"{export.name}: check {what} failed: {evaluation.description or ''}", flush=True)
    # a blocking check that failed fails the run after every partition committed: the files are
    # reported (above), not undone, and never loaded
    committed = all(len(exported[key]) == len(export.tables) for key in group)
    # (an evaluation read back from the run does not carry its spec's `blocking`)
    checked_out = not result.success and committed and any(e.check_name in BLOCKING for e in failed_checks)
    if not result.success and not checked_out:
        # a failed run may still have committed its earlier partitions (each partition commits on its own)
        cause = failure_line(result, verbose)
        for key in group:
            if len(exported[key]) < len(export.tables):
                progress.done += 1
                print(f"{export.name} {key}: FAILED: {cause}  {progress.line()}", flush=True)
        return False
    if export.warehouse and checked_out:
        print(f"{export.name} {group[0]} .. {group[-1]}: load skipped: files_match_manifests failed", flush=True)
        return False
    if export.warehouse:
        loaded = run(load_job_name(export), [warehouse_asset_key(export, t) for t in export.tables])
        if not loaded.success:
            print(f"{export.name} {group[0]} .. {group[-1]}: load FAILED: {failure_line(loaded, verbose)}", flush=True)
            return False
    return True


def run_exports(config: XeroMLConfig, names: list[str] | None, first: date, last: date, verbose: bool = False) -> int:
    """Failed runs: 0 when every partition was exported (and loaded)."""
    from xeroml_pipelines.defs.keys import export_asset_key
    from xeroml_pipelines.defs.location import build_definitions

    selected = plan(config, names, first, last)
    missing = config.missing_secrets({export.name for export, _ in selected})
    if missing:
        raise UsageError(f"secrets missing from the environment (unset or empty): {', '.join(missing)}; set them and re-run")
    defs = build_definitions(config)
    instance = project_instance(Path.cwd())
    for run_id in fail_orphaned_runs(instance):
        print(f"run {run_id} was left unfinished by a killed xeroml process: marked failed, its pool slots freed")
    failures = 0
    for export, partitions in selected:
        progress = Progress(total=len(partitions))
        # as a backfill runs them: as many partitions per run as the assets' backfill policy takes
        policy = defs.resolve_assets_def(export_asset_key(export, export.tables[0])).backfill_policy
        step = (policy and policy.max_partitions_per_run) or len(partitions)
        failed = sum(
            not _run_group(export, partitions[i : i + step], defs, instance, progress, verbose)
            for i in range(0, len(partitions), step)
        )
        failures += failed
        if failed:
            continue  # "files under ..." would read as success
        print(f"{export.name}: files under {export.destination.location}")
        if export.warehouse:
            wh = export.warehouse
            print(f"{export.name}: loaded into {wh.type} {getattr(wh, 'path', '')} (tables {wh.table_prefix}*)")
    return failures
