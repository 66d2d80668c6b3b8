"""Fleet benchmark: one window of observations for many registered projects against one project
holding the same rows, each run a fresh process through the fleet's run (registry read, targets
opened, one query, every project's files and manifests, the outcome recorded), medians and ratios.

    python benchmarks/fleet_benchmark.py --rows 1000000 --projects 1000 --repeats 3

Cases, on the same database (generated once; ~1 KB of text per observation):
- one:      one registered project holding all `--rows` rows;
- many:     `--projects` registered projects holding `--rows / --projects` rows each;
- some:     `--refused-among` projects holding `--rows` between them, one of them writing to an
            S3 bucket (a moto server), the others to local folders;
- refused:  the same, that project's bucket not existing (a real refusal, its round trips
            included).
The goals (issue 22): many ≤ 1.5 × one; refused ≤ 1.10 × some. Each pair runs back to back (the
cases in turn), so drift on a shared machine reaches them alike.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DAY = "2025-01-15"
CASES = ("one", "many", "some", "refused")


def _generate(db: Path, rows: int, groups: dict[str, int]) -> None:
    """`groups`: project-name prefix -> projects; each group holds `rows` observations."""
    from xeroml_pipelines.clickhouse.resource import ClickHouseResource

    ch = ClickHouseResource(url=f"chdb://{db}", database="bench")
    ch.get_client().command("CREATE DATABASE IF NOT EXISTS bench")
    ch.create_schema()
    for prefix, projects in groups.items():
        per = rows // projects
        ch.get_client().command(
            f"""INSERT INTO bench.observations
            (id, trace_id, project_id, environment, type, start_time, end_time, name, metadata, level,
             input, output, usage_details, total_cost, created_at, updated_at, event_ts, is_deleted)
            SELECT concat('o', toString(number % {per})), concat('t', toString(intDiv(number % {per}, 4))),
                concat('{prefix}', leftPad(toString(intDiv(number, {per})), 5, '0')), 'production', 'GENERATION',
                toDateTime64('{DAY} 00:00:00', 3) + toIntervalMillisecond(number * 86400000 / {rows}),
                toDateTime64('{DAY} 00:00:00', 3) + toIntervalMillisecond(number * 86400000 / {rows} + 900),
                'chat', map('k', 'v'), 'DEFAULT', randomPrintableASCII(500), randomPrintableASCII(500),
                map('input', 10, 'output', 20), 0.001,
                toDateTime64('{DAY} 00:00:00', 3) + toIntervalMillisecond(number * 86400000 / {rows}),
                toDateTime64('{DAY} 00:00:00', 3) + toIntervalMillisecond(number * 86400000 / {rows}),
                toDateTime64('{DAY} 00:00:00', 3) + toIntervalMillisecond(number * 86400000 / {rows}), 0
            FROM numbers({per * projects})"""
        )
    ch.get_client().command("OPTIMIZE TABLE bench.observations FINAL")
    ch.close()


def _register(work: Path, prefix: str, projects: int, s3: str | None = None, bucket: str = "") -> str:
    from xeroml_pipelines.registry.entries import parse_entry
    from xeroml_pipelines.registry.store import Registry

    name = f"registry-{prefix}-{bucket or 'local'}.sqlite"
    url = f"sqlite:///{work / name}"
    entries = []
    for i in range(projects):
        name = f"{prefix}{i:05d}"
        destination: dict = {"provider": "local", "path": f"out/{name}"}
        if s3 and i == projects // 2:
            destination = {
                "provider": "s3",
                "bucket": bucket,
                "region": "us-east-1",
                "endpoint_url": s3,
                "access_key_id_env": "BENCH_KEY",
                "secret_access_key_env": "BENCH_SECRET",
            }
        raw = {
            "name": name,
            "project_id": name,
            "start_date": "2025-01-01",
            "tables": ["observations"],
            "destination": destination,
        }
        entries.append(parse_entry(raw, name))
    registry = Registry(url).create()
    registry.put(entries)
    registry.close()
    return url


def _child(db: str, registry_url: str, out: str) -> None:
    from xeroml_pipelines.clickhouse.resource import ClickHouseResource
    from xeroml_pipelines.config.fleet import FleetConfig
    from xeroml_pipelines.defs.fleet.keys import fleet_partitions
    from xeroml_pipelines.fleet.run import run_fleet
    from xeroml_pipelines.registry.runs import record_run, select_due
    from xeroml_pipelines.registry.store import Registry
    from xeroml_pipelines.windows import windows_for

    os.chdir(out)
    fleet = FleetConfig(start_date="2025-01-01", retries=0)  # type: ignore[arg-type]
    ch = ClickHouseResource(url=f"chdb://{db}", database="bench")
    ch.get_client()  # the engine starts before the clock
    started = time.perf_counter()
    registry = Registry(registry_url)
    selection = select_due(registry, "daily", 0, 1)
    windows = windows_for(fleet_partitions(fleet, "daily"), [DAY])
    run = run_fleet(ch, registry, selection, ["observations"], windows, "daily", fleet, None, lambda _: None)
    record_run(registry, "daily", run.records, {}, fleet.disable_after, fleet.retry_delay_s)
    report = run.reports[("observations", DAY)]
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "rows": sum(report.written.values()),
                "written": len(report.written),
                "failed": len(report.failed),
                "queries": run.queries,
            }
        )
    )


def _measure(db: Path, registry_url: str, work: Path) -> dict:
    out = Path(tempfile.mkdtemp(dir=work))
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", str(db), registry_url, str(out)], stdout=subprocess.PIPE, env=os.environ.copy()
    )
    assert proc.stdout is not None
    printed = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    shutil.rmtree(out, ignore_errors=True)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"the run of {registry_url} failed")
    return {**json.loads(printed.decode().strip().splitlines()[-1]), "rss_mb": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--refused-among", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/xeroml-fleet-benchmark"))
    parser.add_argument("--keep", action="store_true", help="keep --workdir (gigabytes of data) after the run")
    parser.add_argument("--child", nargs=3)
    parser.add_argument("--generate-into", type=Path)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    groups = {"one": 1, "many": args.projects, "some": args.refused_among}
    if args.generate_into:
        _generate(args.generate_into, args.rows, groups)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from xeroml_pipelines_tests import emulators

    work = args.workdir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    db = work / "db"
    # in a process of its own: a child forked from a parent that held the engine would report the
    # parent's memory as its own peak
    argv = [sys.executable, __file__, "--generate-into", str(db), "--rows", str(args.rows)]
    subprocess.run([*argv, "--projects", str(args.projects), "--refused-among", str(args.refused_among)], check=True)
    moto = emulators.moto(work).start()
    try:
        os.environ |= {"XEROML_ALLOW_ENDPOINTS": "127.0.0.1", "XEROML_ALLOW_ENV_REFS": "BENCH_*"}
        os.environ |= {"BENCH_KEY": "bench", "BENCH_SECRET": "bench-secret"}
        import boto3

        boto3.client(
            "s3", endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id="bench", aws_secret_access_key="bench"
        ).create_bucket(Bucket="bench-bucket")
        registries = {
            "one": _register(work, "one", 1),
            "many": _register(work, "many", args.projects),
            # one of the projects writes to S3: its bucket exists, or (refused) does not
            "some": _register(work, "some", args.refused_among, moto.url, "bench-bucket"),
            "refused": _register(work, "some", args.refused_among, moto.url, "no-such-bucket"),
        }
        results: dict[str, list[dict]] = {case: [] for case in CASES}
        for _ in range(args.repeats):
            for case in CASES:
                results[case].append(_measure(db, registries[case], work))
    finally:
        moto.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    median = {case: statistics.median(r["seconds"] for r in runs) for case, runs in results.items()}
    print(f"One window, {args.rows:,} observations; medians of {args.repeats} fresh processes\n")
    print("| case | projects | seconds | peak RSS MB | files written | failed | ClickHouse queries |")
    print("|---|---|---|---|---|---|---|")
    projects = {"one": 1, "many": args.projects, "some": args.refused_among, "refused": args.refused_among}
    for case, runs in results.items():
        last = runs[-1]
        rss = statistics.median(r["rss_mb"] for r in runs)
        counts = f"{last['written']} | {last['failed']} | {last['queries']}"
        print(f"| {case} | {projects[case]} | {median[case]:.2f} | {rss:.0f} | {counts} |")
    pairs_many = [m["seconds"] / o["seconds"] for m, o in zip(results["many"], results["one"], strict=True)]
    pairs_refused = [r["seconds"] / s["seconds"] for r, s in zip(results["refused"], results["some"], strict=True)]
    for label, pairs, goal in (("many / one", pairs_many, 1.5), ("refused / some", pairs_refused, 1.10)):
        print(f"{label}: {statistics.median(pairs):.2f} (pairs {', '.join(f'{x:.2f}' for x in pairs)}; goal <= {goal})")


if __name__ == "__main__":
    main()
