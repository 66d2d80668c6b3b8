"""`xeroml`: seed demo data and run exports from the command line (the UI: `xeroml ui`).

Exit codes: 0 done; 1 an export, load or verification failed (one line per partition says why;
`--verbose` adds the stack trace); 2 a mistake in the command or the configuration, reported
before anything runs."""

from __future__ import annotations

import argparse
import sys
from datetime import date, timedelta
from typing import TYPE_CHECKING, NoReturn

from xeroml_pipelines.cli.export import UsageError, by_project, run_exports

if TYPE_CHECKING:
    from xeroml_pipelines.config import XeroMLConfig
    from xeroml_pipelines.registry.store import Registered


def _seed(args: argparse.Namespace, first: date) -> tuple[date, date]:
    """Seed the demo data into an empty database (saying so, or saying why nothing was added);
    the days it spans, its tail of late updates included."""
    import os

    from xeroml_pipelines.config import CONFIG_ENV, demo_days, load_config, record_demo_days
    from xeroml_pipelines.config.loading import DEFAULT_CHDB_DIR, DEMO_TAIL_DAYS
    from xeroml_pipelines.demo.generate import DemoSpec, seed_if_empty

    embedded = not os.environ.get(CONFIG_ENV)  # the demo's own database, whose days are recorded
    spec = DemoSpec(start=first, days=args.days, traces_per_day=args.traces_per_day, seed=args.seed)
    if seed_if_empty(load_config().clickhouse, spec):
        print(f"seeded demo data: {args.days} days from {first}, {args.traces_per_day} traces/day/project")
        if embedded:
            return record_demo_days(first, args.days)
        return first, first + timedelta(days=args.days - 1 + DEMO_TAIL_DAYS)
    known = demo_days() if embedded else None
    where = f"./{DEFAULT_CHDB_DIR}" if embedded else "the configured database"
    print(
        f"the database already holds traces{f' ({known[0]} .. {known[1]})' if known else ''}: nothing seeded; "
        f"--days, --traces-per-day and --seed apply to an empty database only (delete {where} to seed anew)"
    )
    return known or (first, first + timedelta(days=args.days - 1 + DEMO_TAIL_DAYS))


def cmd_demo(args: argparse.Namespace) -> int:
    from xeroml_pipelines.config import DEMO_START, load_config

    first, last = _seed(args, DEMO_START)
    config = load_config()
    if args.format:
        config = config.with_format(args.format)
        extension = ".parquet" if args.format == "parquet" else ".jsonl"
        print(
            f"writing {args.format} files: a partition has one object, so each replaces the partition's file of the "
            f"other format (read {{table}}/*{extension} from now on)"
        )
    return 1 if run_exports(config, None, first, last, args.verbose) else 0


def cmd_seed(args: argparse.Namespace) -> int:
    from xeroml_pipelines.config import DEMO_START

    _seed(args, args.start or DEMO_START)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from xeroml_pipelines.config import load_config

    config = load_config()
    configured, registered = _split_projects(config, args.project)
    failures = 0
    if registered:
        from xeroml_pipelines.cli.fleet import run_registered

        failures += run_registered(config, registered, args.start, args.end or args.start, args.verbose)
    if configured or not args.project:
        names = by_project(config, args.export, configured)
        failures += run_exports(config, names, args.start, args.end or args.start, args.verbose)
    return 1 if failures else 0


def _split_projects(config: XeroMLConfig, projects: list[str] | None) -> tuple[list[str], list[Registered]]:
    """`--project` values: the configured exports' projects, and the registered exports of the
    others (looked up only when some are not configured)."""
    known = {e.project_id for e in config.exports}
    configured = [p for p in projects or [] if p in known]
    others = [p for p in projects or [] if p not in known]
    if not others or config.fleet is None:  # without the fleet, `by_project` names the mistake
        return list(projects or []), []
    from xeroml_pipelines.cli.fleet import registered

    return configured, registered(others, sorted(known))


def cmd_verify(args: argparse.Namespace) -> int:
    from xeroml_pipelines.config import load_config
    from xeroml_pipelines.export.verify import verify

    config = load_config()
    known = [e.name for e in config.exports]
    if unknown := [n for n in args.export or [] if n not in known]:
        raise UsageError(f"no export named {', '.join(map(repr, unknown))}; the configuration has: {', '.join(known)}")
    configured, registered = _split_projects(config, args.project)
    problems = 0
    if registered:
        from xeroml_pipelines.cli.fleet import verify_registered

        problems += verify_registered(registered, args.deep)
        if not configured:
            return 1 if problems else 0
    names = by_project(config, args.export, configured)
    # verify reads the destinations only: ClickHouse's secret is not needed
    missing = [m for m in config.missing_secrets(names) if "(exports." in m]
    if missing:
        raise UsageError(f"secrets missing from the environment (unset or empty): {', '.join(missing)}; set them and re-run")
    for export in config.exports:
        if names and export.name not in names:
            continue
        # a destination of its own, its clients torn down after, as Dagster does around a run
        with export.destination.process_config_and_initialize_cm() as destination:
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
    from xeroml_pipelines.tables import TABLES

    tables = args.table or list(TABLES)
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


def cmd_ui(args: argparse.Namespace) -> int:
    """`dagster dev` on the CLI's instance. It runs from inside the instance folder: `dagster dev`
    warns about any dagster.yaml in its working folder that is not DAGSTER_HOME's, and the
    project's is."""
    import os
    from pathlib import Path

    from xeroml_pipelines.cli.instance import project_home, project_instance

    project = Path.cwd()
    project_instance(project).dispose()  # storage created and migrated before two processes start on it
    home = project_home(project)
    workspace = project / "workspace.yaml"
    target = ["-w", str(workspace)] if workspace.is_file() else ["-m", "xeroml_pipelines.definitions"]
    dagster = Path(sys.executable).with_name("dagster")
    # `dagster dev` still works as it always has; its notice that a newer command exists is not ours to show
    quiet = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), "ignore:Function `dev_command` is superseded"]))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "XEROML_HOME": os.environ.get("XEROML_HOME", str(project)),
        "PYTHONWARNINGS": quiet,
    }
    print(f"Dagster UI on http://{args.host}:{args.port} (instance {home}); Ctrl-C stops it", flush=True)
    os.chdir(home)
    os.execve(dagster, [str(dagster), "dev", *target, "-h", args.host, "-p", str(args.port)], env)
    return 0  # not reached: the process is dagster dev now


def cmd_ddl(args: argparse.Namespace) -> int:
    from xeroml_pipelines.sql.source_tables import create_schema_sql

    print(";\n\n".join(create_schema_sql(args.database)) + ";")
    return 0


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # one plain line, not argparse's usage block (which wraps as options grow)
        print(f"{self.prog}: {message} (`{self.prog} --help` lists the arguments)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    """Every command and its arguments (docs/ show them; the suite parses each one shown)."""
    from xeroml_pipelines.tables import TABLES  # the table registry: the choices of --table

    parser = _Parser(prog="xeroml", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(required=True)
    verbose = _Parser(add_help=False)
    verbose.add_argument("--verbose", action="store_true", help="print a failure's stack trace too")

    p = sub.add_parser("demo", parents=[verbose], help="seed the embedded demo database if empty, then export the demo days")
    p.add_argument("--days", type=int, default=7, help="days of demo data to seed (default 7; only into an empty database)")
    p.add_argument("--traces-per-day", type=int, default=1000, help="traces per day and project to seed (default 1000)")
    p.add_argument("--seed", type=int, default=42, help="random seed of the demo data (default 42: the same data every time)")
    p.add_argument(
        "--format",
        choices=["jsonl", "parquet"],
        help="write these files whatever the configuration says (replaces the other format's files: one object per partition)",
    )
    p.set_defaults(fn=cmd_demo)

    p = sub.add_parser("seed", help="create the schema and fill it with demo data if it holds no traces")
    p.add_argument("--start", type=_day, help="first day (default: the demo's, 2025-01-13)")
    p.add_argument("--days", type=int, default=7, help="days of data (default 7)")
    p.add_argument("--traces-per-day", type=int, default=1000, help="traces per day and project (default 1000)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42: the same data every time)")
    p.set_defaults(fn=cmd_seed)

    p = sub.add_parser("export", parents=[verbose], help="materialize the partitions of a date range (inclusive)")
    p.add_argument("start", type=_day, help="first day, YYYY-MM-DD")
    p.add_argument("end", type=_day, nargs="?", help="last day (default: the first)")
    p.add_argument("--export", action="append", help="only this export (repeatable)")
    p.add_argument("--project", action="append", help="only the exports of this project id (repeatable)")
    p.set_defaults(fn=cmd_export)

    p = sub.add_parser("verify", help="list each destination and compare its manifests with its objects")
    p.add_argument("--export", action="append", help="only this export (repeatable)")
    p.add_argument("--project", action="append", help="only the exports of this project id (repeatable)")
    p.add_argument("--deep", action="store_true", help="also read every object and compare its sha256")
    p.set_defaults(fn=cmd_verify)

    p = sub.add_parser("schemas", help="print the exported files' schemas (from the pydantic models)")
    p.add_argument(
        "--format", choices=["jsonschema", "parquet", "bigquery", "snowflake", "redshift", "duckdb"], default="jsonschema"
    )
    p.add_argument("--table", action="append", choices=list(TABLES))
    p.add_argument("--export", help="follow this configured export's field selection (exclude:)")
    p.set_defaults(fn=cmd_schemas)

    p = sub.add_parser("ui", help="open the Dagster UI (dagster dev) on the instance the CLI records its runs in")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(fn=cmd_ui)

    from xeroml_pipelines.cli import destinations

    destinations.add_parser(sub, verbose)

    p = sub.add_parser("ddl", help="print the ClickHouse DDL of XeroML's tables")
    p.add_argument("--database", default="default")
    p.set_defaults(fn=cmd_ddl)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from xeroml_pipelines.errors import ConfigError

    if not getattr(args, "verbose", False):
        import logging

        # the drivers' own retry warnings: the one FAILED line says what went wrong
        for name in ("clickhouse_connect", "urllib3"):
            logging.getLogger(name).setLevel(logging.ERROR)

    try:
        return args.fn(args)
    except (ConfigError, UsageError) as e:
        print(f"xeroml: {e}" if isinstance(e, UsageError) else e, file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - one plain line; the stack trace only when asked for
        if getattr(args, "verbose", False):
            import traceback

            traceback.print_exc()
        print(f"xeroml: {type(e).__name__}: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
