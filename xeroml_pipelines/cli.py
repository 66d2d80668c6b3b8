"""`xeroml`: seed demo data and run exports from the command line (the UI is `dagster dev`)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the commands import what they use: the code location is built by `export` only
    from dagster import DagsterInstance

    from xeroml_pipelines.config import ExportConfig, XeroMLConfig


# One summary line per partition here; the full event log stays in the Dagster instance.
_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _instance() -> DagsterInstance:
    from dagster import DagsterInstance

    # With DAGSTER_HOME set, runs land in that instance and show up in `dagster dev`.
    try:
        return DagsterInstance.get()
    except Exception:  # noqa: BLE001 - no DAGSTER_HOME (or an unusable one): a throwaway instance
        return DagsterInstance.ephemeral()


def _export(config: XeroMLConfig, export_names: list[str] | None, first: date, last: date) -> int:
    from dagster import materialize
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from xeroml_pipelines.defs.keys import export_asset_key, warehouse_asset_key
    from xeroml_pipelines.defs.location import build_definitions

    defs = build_definitions(config)
    instance = _instance()
    failures = 0
    for export in config.exports:
        if export_names and export.name not in export_names:
            continue
        # the export, then its warehouse load (what the sensor does in a deployment)
        keys = [export_asset_key(export, t) for t in export.tables]
        if export.warehouse:
            keys += [warehouse_asset_key(export, t) for t in export.tables]
        assets = [defs.get_assets_def(k) for k in keys]
        partitions = _partition_keys(export, first, last)
        # As a backfill runs them: up to max_partitions_per_run partitions per run, one ClickHouse
        # scan per table for the run's range, one file and manifest per partition.
        for start in range(0, len(partitions), export.max_partitions_per_run):
            group = partitions[start : start + export.max_partitions_per_run]
            tags = {ASSET_PARTITION_RANGE_START_TAG: group[0], ASSET_PARTITION_RANGE_END_TAG: group[-1]}
            result = materialize(
                assets, tags=tags, resources=defs.resources, instance=instance, raise_on_error=False, run_config=_QUIET
            )
            failures += not result.success
            rows: dict[str, dict[str, object]] = {key: {} for key in group}
            for event in result.get_asset_materialization_events():
                m = event.materialization
                if "rows" in m.metadata and m.partition in rows:
                    rows[m.partition][m.asset_key.path[-1]] = m.metadata["rows"].value
            for key in group:
                # a failed run may still have committed its earlier partitions (README: range runs)
                status = "ok" if result.success or len(rows[key]) == len(export.tables) else "FAILED"
                print(f"{export.name} {key}: {status} " + " ".join(f"{t}={n}" for t, n in rows[key].items()), flush=True)
        print(f"{export.name}: files under {export.destination.location}")
        if export.warehouse:
            wh = export.warehouse
            print(f"{export.name}: loaded into {wh.type} {getattr(wh, 'path', '')} (tables {wh.table_prefix}*)")
    return failures


def _partition_keys(export: ExportConfig, first: date, last: date) -> list[str]:
    """The export's partitions whose window starts on a day from `first` to `last`."""
    from dagster import TimeWindow

    from xeroml_pipelines.defs.keys import partitions_for

    start = datetime.combine(first, time(), UTC)
    end = datetime.combine(last + timedelta(days=1), time(), UTC)
    return list(partitions_for(export).get_partition_keys_in_time_window(TimeWindow(start, end)))


def cmd_demo(args: argparse.Namespace) -> int:
    from xeroml_pipelines.config import DEMO_START, load_config
    from xeroml_pipelines.demo.generate import DemoSpec, seed_if_empty

    config = load_config()
    if args.format:
        config = config.with_format(args.format)
    spec = DemoSpec(start=DEMO_START, days=args.days, traces_per_day=args.traces_per_day, seed=args.seed)
    if seed_if_empty(config.clickhouse.resource(), spec):
        print(f"seeded demo data: {args.days} days from {DEMO_START}, {args.traces_per_day} traces/day/project")
    # Updates and late arrivals land up to three days after the last demo day.
    last = DEMO_START + timedelta(days=args.days + 2)
    return 1 if _export(config, None, DEMO_START, last) else 0


def cmd_seed(args: argparse.Namespace) -> int:
    from xeroml_pipelines.config import DEMO_START, load_config
    from xeroml_pipelines.demo.generate import DemoSpec, seed_if_empty

    config = load_config()
    spec = DemoSpec(start=args.start or DEMO_START, days=args.days, traces_per_day=args.traces_per_day, seed=args.seed)
    seeded = seed_if_empty(config.clickhouse.resource(), spec)
    print("seeded demo data" if seeded else "the database already holds traces: nothing seeded")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from xeroml_pipelines.config import load_config

    config = load_config()
    return 1 if _export(config, args.export, args.start, args.end or args.start) else 0


def cmd_verify(args: argparse.Namespace) -> int:
    from xeroml_pipelines.config import load_config
    from xeroml_pipelines.export.verify import verify

    config = load_config()
    problems = 0
    for export in config.exports:
        if args.export and export.name not in args.export:
            continue
        # resolves EnvVar secrets and tears clients down, as Dagster does around a run
        with export.destination.resource().process_config_and_initialize_cm() as destination:
            for table in export.tables:
                report = verify(destination, export.object_layout(), table, deep=args.deep)
                status = "ok" if report.ok else "PROBLEMS"
                print(f"{export.name}/{table}: {report.manifests} manifests, {report.objects} objects: {status}")
                for problem in report.problems:
                    print(f"  - {problem}")
                problems += len(report.problems)
    return 1 if problems else 0


def cmd_schemas(args: argparse.Namespace) -> int:
    import json

    from xeroml_pipelines import schemas

    tables = args.table or list(schemas.MODELS)
    exclude: dict[str, frozenset[str]] = {}
    if args.export:  # that export's field selection
        from xeroml_pipelines.config import load_config

        exports = {e.name: e for e in load_config().exports}
        if args.export not in exports:
            print(f"no export named {args.export!r}; the configuration has: {', '.join(exports)}", file=sys.stderr)
            return 2
        export = exports[args.export]
        tables = args.table or list(export.tables)
        exclude = {t: export.excluded(t) for t in tables}
    selected = {t: exclude.get(t, schemas.NO_EXCLUSIONS) for t in tables}
    if args.format == "parquet":  # the schema of the Parquet files, as Arrow names it
        from xeroml_pipelines.export.parquet import arrow_schema

        print("\n\n".join(f"-- {t}\n{arrow_schema(t, selected[t]).to_string(show_schema_metadata=False)}" for t in tables))
    elif args.format in ("jsonschema", "bigquery"):
        rendered = {t: json.loads(schemas.render(t, args.format, selected[t])) for t in tables}
        print(json.dumps(rendered if len(tables) > 1 else rendered[tables[0]], indent=2))
    else:
        print("\n\n".join(schemas.render(t, args.format, selected[t]) for t in tables))
    return 0


def cmd_ddl(args: argparse.Namespace) -> int:
    from xeroml_pipelines.tables import create_schema_sql

    print(";\n\n".join(create_schema_sql(args.database)) + ";")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xeroml", description=__doc__)
    sub = parser.add_subparsers(required=True)

    p = sub.add_parser("demo", help="seed the embedded demo database if empty, then export the demo days")
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--traces-per-day", type=int, default=1000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--format", choices=["jsonl", "parquet"], help="write these files whatever the configuration says")
    p.set_defaults(fn=cmd_demo)

    p = sub.add_parser("seed", help="create the schema and fill it with demo data if it holds no traces")
    p.add_argument("--start", type=date.fromisoformat, help="first day (default: the demo's, 2025-01-13)")
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--traces-per-day", type=int, default=1000)
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(fn=cmd_seed)

    p = sub.add_parser("export", help="materialize the partitions of a date range (inclusive)")
    p.add_argument("start", type=date.fromisoformat)
    p.add_argument("end", type=date.fromisoformat, nargs="?")
    p.add_argument("--export", action="append", help="only this export (repeatable)")
    p.set_defaults(fn=cmd_export)

    p = sub.add_parser("verify", help="list each destination and compare its manifests with its objects")
    p.add_argument("--export", action="append", help="only this export (repeatable)")
    p.add_argument("--deep", action="store_true", help="also read every object and compare its sha256")
    p.set_defaults(fn=cmd_verify)

    p = sub.add_parser("schemas", help="print the exported files' schemas (from the pydantic models)")
    p.add_argument(
        "--format", choices=["jsonschema", "parquet", "bigquery", "snowflake", "redshift", "duckdb"], default="jsonschema"
    )
    p.add_argument("--table", action="append", choices=["traces", "observations", "scores", "sessions"])
    p.add_argument("--export", help="follow this configured export's field selection (exclude:)")
    p.set_defaults(fn=cmd_schemas)

    p = sub.add_parser("ddl", help="print the ClickHouse DDL of XeroML's tables")
    p.add_argument("--database", default="default")
    p.set_defaults(fn=cmd_ddl)

    args = parser.parse_args(argv)
    from xeroml_pipelines.errors import ConfigError

    try:
        return args.fn(args)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
