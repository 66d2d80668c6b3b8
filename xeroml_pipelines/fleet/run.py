"""One fleet run: the tables of a shard's due exports over a window (or a range), one query per
table (per mode, format and column selection among the exports), every export's files to its own
destination. A destination's failure is its export's: a transient one is tried again in the run,
then, like a refusal, recorded as a missed window; a ClickHouse failure fails the run."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.clickhouse.source import TableQuery
from xeroml_pipelines.config.fleet import FleetConfig
from xeroml_pipelines.errors import ExportError
from xeroml_pipelines.export.fleet import Outcome, Target, covers, export_fleet
from xeroml_pipelines.export.stream import ExportStream
from xeroml_pipelines.fleet.targets import QueryGroup, open_targets, query_groups, window_span
from xeroml_pipelines.registry.keyring import Keyring
from xeroml_pipelines.registry.runs import RunRecord, Selection
from xeroml_pipelines.registry.store import Registry
from xeroml_pipelines.windows import Cadence, Window

Log = Callable[[str], None]


@dataclass
class WindowReport:
    """One table's window across the run's exports: what its materialization reports."""

    written: dict[str, int] = field(default_factory=dict)  # export name -> rows
    failed: dict[str, str] = field(default_factory=dict)  # export name -> cause


@dataclass
class FleetRun:
    records: dict[str, RunRecord]
    reports: dict[tuple[str, str], WindowReport]  # (table, partition)
    queries: int = 0  # ClickHouse queries made: one per table and query group, and per retry


def run_fleet(
    clickhouse: ClickHouseResource,
    registry: Registry,
    selection: Selection,
    tables: Sequence[str],
    windows: Sequence[Window],
    cadence: Cadence,
    fleet: FleetConfig,
    run_id: str | None,
    log: Log,
    keyring: Keyring | None = None,
) -> FleetRun:
    entries = selection.exporting
    reports = {(t, w.partition): WindowReport() for t in tables for w in windows}
    run = FleetRun({r.name: RunRecord() for r in entries}, reports)
    with ExitStack() as opened:  # the destinations' clients, closed when the run ends
        targets, refused = open_targets(registry, entries, cadence, keyring, opened)
        for table in tables:
            for registered in entries:
                error = refused.get(registered.name)
                if error and table in registered.entry.export.tables:
                    first, last = window_span(registered, cadence)
                    _failed(run, registered.name, table, [w for w in windows if covers(first, last, w)], error)
            for group in query_groups(table, entries, targets):
                _export_group(clickhouse, table, group, windows, fleet, run_id, log, run)
    return run


def _export_group(
    clickhouse: ClickHouseResource,
    table: str,
    group: QueryGroup,
    windows: Sequence[Window],
    fleet: FleetConfig,
    run_id: str | None,
    log: Log,
    run: FleetRun,
) -> None:
    pending: Sequence[Target] = group.targets
    for attempt in range(fleet.retries + 1):
        if attempt:
            delay = fleet.retry_delay_s * 2 ** (attempt - 1)
            log(f"{table}: {len(pending)} export(s) failed transiently; trying them again in {delay:.0f}s")
            time.sleep(delay)
        projects = tuple(sorted({t.project_id for t in pending}))
        source = TableQuery(clickhouse, table, group.mode, projects, group.exclude)
        stream = ExportStream("fleet", projects[0], table, group.mode, tuple(windows), source, group.exclude)
        outcomes = export_fleet(pending, stream, projects, run_id, fleet.uploads)
        run.queries += 1
        last = attempt == fleet.retries
        retry = []
        for target in pending:
            outcome = outcomes[target.name]
            _written(run, table, outcome)
            if outcome.error is None:
                continue
            if outcome.error.permanent or last:
                _failed(run, target.name, table, [w for w in windows if target.covers(w)], outcome.error)
            else:
                retry.append(target)
        pending = retry
        if not pending:
            return


def _written(run: FleetRun, table: str, outcome: Outcome) -> None:
    record = run.records[outcome.name]
    for manifest in outcome.manifests:
        record.written.add((table, manifest.partition))
        record.failed.pop((table, manifest.partition), None)
        run.reports[(table, manifest.partition)].written[outcome.name] = manifest.rows


def _failed(run: FleetRun, name: str, table: str, windows: Sequence[Window], error: ExportError) -> None:
    record = run.records[name]
    for window in windows:
        if (table, window.partition) not in record.written:
            record.failed[(table, window.partition)] = error
            run.reports[(table, window.partition)].failed[name] = str(error)
