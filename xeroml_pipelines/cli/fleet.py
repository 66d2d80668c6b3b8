"""`xeroml export A B --project P` and `xeroml verify --project P` for a registered project: the
fleet job's runs of P's windows, as a backfill from the UI launches them with P as run
configuration (only P's exports are written), and P's destinations checked against their manifests."""

from __future__ import annotations

from contextlib import closing
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xeroml_pipelines.cli.export import QUIET, RANGE_END_TAG, RANGE_START_TAG, UsageError, failure_line
from xeroml_pipelines.cli.instance import fail_orphaned_runs, process_tag, project_instance

if TYPE_CHECKING:
    from xeroml_pipelines.config import XeroMLConfig
    from xeroml_pipelines.registry.store import Registered


def registered(projects: list[str], configured: list[str]) -> list[Registered]:
    """The registered exports of `projects` (project ids or export names); an unknown one is a
    `UsageError`."""
    from xeroml_pipelines.registry.store import Registry

    registry = Registry().create()
    try:
        # the entries chosen from the listing, validated alone: a registry holds thousands
        chosen = [r.name for r in registry.listing() if r.name in projects or r.project_id in projects]
        found = registry.some(chosen)
    finally:
        registry.close()
    known = {r.name for r in found} | {r.entry.export.project_id for r in found}
    if unknown := [p for p in projects if p not in known]:
        raise UsageError(
            f"no configured or registered export of project {', '.join(map(repr, unknown))} "
            f"(configured: {', '.join(configured) or 'none'}; registered: `xeroml destinations list`)"
        )
    return found


def _partitions(cadence: str, first: date, last: date, start: date) -> list[str]:
    from xeroml_pipelines.windows import closed_window, partition_key

    step = timedelta(hours=1) if cadence == "hourly" else timedelta(days=1)
    newest = closed_window(cadence, datetime.now(UTC), 0)  # type: ignore[arg-type]
    t, end = datetime.combine(max(first, start), time(), UTC), datetime.combine(last + timedelta(days=1), time(), UTC)
    keys = []
    while t < end and t <= newest:
        keys.append(partition_key(cadence, t))  # type: ignore[arg-type]
        t += step
    return keys


def run_registered(config: XeroMLConfig, entries: list[Registered], first: date, last: date, verbose: bool) -> int:
    """Failed runs of the registered exports' windows from `first` to `last`."""
    from xeroml_pipelines.defs.fleet.keys import fleet_asset_key, fleet_job_name
    from xeroml_pipelines.defs.fleet.resources import SCOPE_KEY
    from xeroml_pipelines.defs.location import build_definitions
    from xeroml_pipelines.registry.runs import shard_of

    fleet = config.fleet
    if fleet is None:
        raise UsageError("registered exports run in the fleet: add `fleet: {start_date: ...}` to the configuration")
    if last < first:
        raise UsageError(f"the range ends before it starts: {first} .. {last} (give the earlier day first)")
    plans = []
    for r in entries:
        export = r.entry.export
        if export.cadence not in fleet.cadences:
            raise UsageError(
                f"{r.name}: the fleet runs no {export.cadence} exports (fleet.cadences: {', '.join(fleet.cadences)})"
            )
        keys = _partitions(export.cadence, first, last, max(export.start_date, fleet.start_date))
        if not keys:
            raise UsageError(f"{r.name} has no closed window in {first} .. {last} (it starts {export.start_date})")
        plans.append((r, keys))
    defs = build_definitions(config)
    instance = project_instance(Path.cwd())
    for run_id in fail_orphaned_runs(instance):
        print(f"run {run_id} was left unfinished by a killed xeroml process: marked failed, its pool slots freed")
    failures = 0
    for r, keys in plans:
        export = r.entry.export
        shard = shard_of(export.project_id, fleet.shards)
        selection = [fleet_asset_key(export.cadence, shard, t) for t in fleet.tables if t in export.tables]
        job = defs.resolve_job_def(fleet_job_name(export.cadence))
        run_config = {**QUIET, "resources": {SCOPE_KEY: {"config": {"projects": [r.name]}}}}
        step = fleet.max_partitions_per_run
        for i in range(0, len(keys), step):
            group = keys[i : i + step]
            tags = {RANGE_START_TAG: group[0], RANGE_END_TAG: group[-1], **process_tag()}
            result = job.execute_in_process(
                instance=instance, tags=tags, run_config=run_config, asset_selection=selection, raise_on_error=False
            )
            if not result.success:
                failures += 1
                print(f"{r.name} {group[0]} .. {group[-1]}: FAILED: {failure_line(result, verbose)}", flush=True)
                continue
            failures += _report(r.name, group, result)
        print(f"{r.name}: files under {export.destination.location}")
    return failures


def _report(name: str, group: list[str], result: Any) -> int:
    """One line per window: each table's rows, or the destination's failure. 1 if any failed."""
    by_partition: dict[str, dict[str, Any]] = {key: {} for key in group}
    for event in result.get_asset_materialization_events():
        m = event.step_materialization_data.materialization
        if m.partition in by_partition:
            by_partition[m.partition][m.asset_key.path[-1]] = {k: v.value for k, v in m.metadata.items()}
    failed = 0
    for key, tables in by_partition.items():
        causes = {t: meta["failed"].get(name) for t, meta in tables.items() if meta.get("failed", {}).get(name)}
        if causes:
            failed = 1
            print(f"{name} {key}: FAILED: {next(iter(causes.values()))}", flush=True)
        else:
            print(f"{name} {key}: ok " + " ".join(f"{t}={meta['rows']}" for t, meta in tables.items()), flush=True)
    return failed


def verify_registered(entries: list[Registered], deep: bool) -> int:
    """Problems found in the registered exports' destinations."""
    from xeroml_pipelines.export.verify import verify
    from xeroml_pipelines.registry.endpoints import check_destination
    from xeroml_pipelines.registry.store import Registry

    registry = Registry()
    problems = 0
    try:
        for r in entries:
            export = r.entry.export
            secrets = registry.open_secrets(r.name) if r.entry.secret_names else {}
            check_destination(export, secrets)
            with closing(export.destination.with_credentials(secrets)) as destination:
                for table in export.tables:
                    report = verify(destination, export.object_layout(), table, deep=deep)
                    status = "ok" if report.ok else "PROBLEMS"
                    print(f"{r.name}/{table}: {report.manifests} manifests, {report.objects} objects: {status}")
                    for problem in report.problems:
                        print(f"  - {problem}")
                    problems += len(report.problems)
    finally:
        registry.close()
    return problems
