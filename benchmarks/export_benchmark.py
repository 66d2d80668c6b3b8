"""Export benchmark: one partition of observations, every path in a fresh process, medians.

    python benchmarks/export_benchmark.py --rows 200000 2000000 --repeats 3

Generates the data with the demo generator (prompts and completions scaled to ~3 KB per
observation), then times, on the same data in the same run:
- native_final: ClickHouse itself, `SELECT * ... FINAL ... INTO OUTFILE ... FORMAT JSONEachRow`
  (the physical limit, but not the same job: FINAL drops deletes and keeps versions by sort key);
- native_same: ClickHouse itself writing exactly our selection (latest version per id, in order);
- native_parquet: ClickHouse itself writing the same selection as Parquet (zstd), `FORMAT Parquet`;
- xeroml / xeroml_zstd / xeroml_gzip: the export IO manager, as a run executes it;
- xeroml_parquet: the same, `format: parquet` (zstd);
- xeroml_enriched: the same day as `enriched_observations` (each observation joined with its
  trace's latest version, in the same one query per window);
- xeroml_dagster: a whole Dagster run of the partition (`materialize`), fixed run overhead included;
- xeroml_http: the export through clickhouse-connect's HTTP client, from ClickHouse's HTTP
  interface over the same data (served by the test suite's front for chDB in its own process:
  its time includes that Python server, the row is for the client's memory);
- dlt: dlt's `sql_table` through chdb-sqlalchemy into its filesystem destination as jsonl
  (needs `pip install "dlt[filesystem]" chdb-sqlalchemy`; skipped above --dlt-max-rows);
- a 30-day backfill: one Dagster run over 30 partitions against 30 single-partition runs, and
  the one run again writing Parquet (its peak memory against the JSON run's).
Peak RSS is each child's own (wait4), `engine` is chDB opened and idle: the floor. The paths
run in rounds (each once per round), so drift on a shared machine reaches them alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

PROJECT = "demo"
DAY = date(2025, 1, 13)
OBSERVATIONS_PER_TRACE = 4.6  # what the demo generator produces on average
TEXT_SCALE = 4  # ~3 KB per observation
RANGE_DAYS = 30


# ---- children: each measurement runs in its own process ---------------------------------------


def _window(day: date):
    from xeroml_pipelines.windows import Window

    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return Window(day.isoformat(), start, start + timedelta(days=1))


def _clickhouse(db: str):
    from xeroml_pipelines.clickhouse.resource import ClickHouseResource

    ch = ClickHouseResource(url=db if db.startswith("http://") else f"chdb://{db}", database="bench")
    ch.get_client()  # the engine starts before the clock
    return ch


def _native(db: str, out: Path, same_selection: bool, parquet: bool = False) -> dict:
    import chdb

    from xeroml_pipelines.sql.lines import JSON_SETTINGS
    from xeroml_pipelines.sql.selection import export_sort_key, latest_in_window_filter
    from xeroml_pipelines.sql.source_tables import SOURCES
    from xeroml_pipelines.windows import Span

    conn = chdb.connect(db)
    conn.query("SELECT 1")
    w = _window(DAY)
    target = out / ("native.parquet" if parquet else "native.jsonl")
    if same_selection:
        table = SOURCES["observations"]
        keys = ", ".join(export_sort_key(table)) + " DESC"
        sql = (
            f"SELECT * FROM bench.observations WHERE {latest_in_window_filter(table, 'bench', 'incremental')} "
            f"ORDER BY {keys} LIMIT 1 BY id"
        )
    else:
        sql = (
            "SELECT * FROM bench.observations FINAL WHERE project_id = {project_id:String} "
            "AND event_ts >= {window_start:DateTime64(3, 'UTC')} AND event_ts < {window_end:DateTime64(3, 'UTC')}"
        )
    if parquet:
        sql += f" INTO OUTFILE '{target}' TRUNCATE FORMAT Parquet SETTINGS output_format_parquet_compression_method = 'zstd'"
    else:
        sql += f" INTO OUTFILE '{target}' TRUNCATE FORMAT JSONEachRow SETTINGS {', '.join(JSON_SETTINGS)}"
    t = time.perf_counter()
    conn.query(sql, params={"project_ids": [PROJECT], **Span.of([w]).sql_params()})
    seconds = time.perf_counter() - t
    if parquet:
        import pyarrow.parquet as pq

        rows = pq.ParquetFile(target).metadata.num_rows
    else:
        with target.open("rb") as f:
            rows = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 24), b""))
    return {"seconds": seconds, "rows": rows, "bytes": target.stat().st_size, "stored": target.stat().st_size}


def _xeroml(db: str, out: Path, compression: str, file_format: str = "jsonl", table: str = "observations") -> dict:
    from xeroml_pipelines.clickhouse.source import TableQuery
    from xeroml_pipelines.destinations.local import LocalFolder
    from xeroml_pipelines.export import engine
    from xeroml_pipelines.export.layout import Layout
    from xeroml_pipelines.export.stream import ExportStream

    ch = _clickhouse(db)
    source = TableQuery(ch, table, "incremental", (PROJECT,))
    stream = ExportStream("bench", PROJECT, table, "incremental", (_window(DAY),), source)
    t = time.perf_counter()
    layout = Layout(prefix="", compression=compression, file_format=file_format)
    (m,) = engine.export(LocalFolder(path=str(out)), layout, stream, None)
    return {"seconds": time.perf_counter() - t, "rows": m.rows, "bytes": m.uncompressed_bytes, "stored": m.bytes}


def _definitions(db: str, out: Path, file_format: str = "jsonl"):
    from xeroml_pipelines.config import parse_config
    from xeroml_pipelines.defs.location import build_definitions

    config = f"""
clickhouse: {{url: "chdb://{db}", database: bench}}
exports:
  - name: bench
    project_id: {PROJECT}
    start_date: {DAY.isoformat()}
    tables: [observations]
    retries: 0
    format: {file_format}
    destination: {{provider: local, path: "{out}"}}
"""
    return build_definitions(parse_config(config))


def _materialize(defs, partition: str | None = None, until: str | None = None) -> list:
    from dagster import AssetKey, materialize

    from xeroml_pipelines.cli.export import RANGE_END_TAG, RANGE_START_TAG

    asset = defs.get_assets_def(AssetKey(["bench", "observations"]))
    quiet = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
    if until:
        tags = {RANGE_START_TAG: partition, RANGE_END_TAG: until}
        result = materialize([asset], tags=tags, resources=defs.resources, run_config=quiet)
    else:
        result = materialize([asset], partition_key=partition, resources=defs.resources, run_config=quiet)
    return [e.materialization.metadata for e in result.get_asset_materialization_events()]


def _totals(metadata: list) -> dict:
    return {
        "rows": sum(m["rows"].value for m in metadata),
        "bytes": sum(m["uncompressed_bytes"].value for m in metadata),
        "stored": sum(m["bytes"].value for m in metadata),
    }


def _dagster_run(db: str, out: Path) -> dict:
    defs = _definitions(db, out)
    t = time.perf_counter()
    metadata = _materialize(defs, DAY.isoformat())
    return {"seconds": time.perf_counter() - t, **_totals(metadata)}


def _range_run(db: str, out: Path, file_format: str = "jsonl") -> dict:
    defs = _definitions(db, out, file_format)
    last = DAY + timedelta(days=RANGE_DAYS - 1)
    t = time.perf_counter()
    metadata = _materialize(defs, DAY.isoformat(), last.isoformat())
    return {"seconds": time.perf_counter() - t, **_totals(metadata)}


def _single_runs(db: str, out: Path) -> dict:
    # In one process: a real deployment pays a process start per run on top of this.
    defs = _definitions(db, out)
    t = time.perf_counter()
    metadata = [m for i in range(RANGE_DAYS) for m in _materialize(defs, (DAY + timedelta(days=i)).isoformat())]
    return {"seconds": time.perf_counter() - t, **_totals(metadata)}


def _dlt(db: str, out: Path) -> dict:
    import dlt
    from chdb_sqlalchemy.dialect import ChdbDialect
    from dlt.sources.sql_database import sql_table

    # chdb-sqlalchemy reflects skip indexes (our event_ts minmax) with options SQLAlchemy
    # rejects; dlt never uses indexes, so the table is reflected without them.
    ChdbDialect.get_indexes = lambda self, *args, **kw: []

    w = _window(DAY)

    def only_the_partition(query, table):
        c = table.c
        return (
            query.where(c.project_id == PROJECT)
            .where(c.event_ts >= w.start.replace(tzinfo=None))
            .where(c.event_ts < w.end.replace(tzinfo=None))
        )

    source = sql_table(
        credentials=f"chdb:///{db}",
        schema="bench",
        table="observations",
        query_adapter_callback=only_the_partition,
        reflection_level="minimal",  # full reflection marks the Map columns non-nullable and fails
    )
    source.max_table_nesting = 0  # maps stay JSON objects, as in our files
    os.environ["DESTINATION__FILESYSTEM__BUCKET_URL"] = (out / "dlt").as_uri()
    os.environ["NORMALIZE__DATA_WRITER__DISABLE_COMPRESSION"] = "true"
    pipeline = dlt.pipeline(
        pipeline_name="bench", destination="filesystem", dataset_name="bench", pipelines_dir=str(out / "pipelines")
    )
    t = time.perf_counter()
    pipeline.run(source, loader_file_format="jsonl", write_disposition="replace")
    seconds = time.perf_counter() - t
    files = list((out / "dlt" / "bench" / "observations").glob("*.jsonl"))
    rows = sum(f.read_bytes().count(b"\n") for f in files)
    size = sum(f.stat().st_size for f in files)
    return {"seconds": seconds, "rows": rows, "bytes": size, "stored": size}


def _engine(db: str, out: Path) -> dict:
    _clickhouse(db).scalar("SELECT 1")
    return {"seconds": 0.0, "rows": 0, "bytes": 0, "stored": 0}


CHILDREN = {
    "engine": _engine,
    "native_final": lambda db, out: _native(db, out, same_selection=False),
    "native_same": lambda db, out: _native(db, out, same_selection=True),
    "native_parquet": lambda db, out: _native(db, out, same_selection=True, parquet=True),
    "xeroml": lambda db, out: _xeroml(db, out, "none"),
    "xeroml_parquet": lambda db, out: _xeroml(db, out, "zstd", "parquet"),
    "xeroml_zstd": lambda db, out: _xeroml(db, out, "zstd"),
    "xeroml_gzip": lambda db, out: _xeroml(db, out, "gzip"),
    "xeroml_enriched": lambda db, out: _xeroml(db, out, "none", table="enriched_observations"),
    "xeroml_dagster": _dagster_run,
    "xeroml_http": lambda db, out: _xeroml(db, out, "none"),
    "dlt": _dlt,
    "range_1x30": _range_run,
    "range_1x30_parquet": lambda db, out: _range_run(db, out, "parquet"),
    "single_30x1": _single_runs,
}


# ---- parent ------------------------------------------------------------------------------------


def _generate(db: Path, observations_per_day: int, days: int) -> None:
    if (db / ".complete").exists():
        return
    shutil.rmtree(db, ignore_errors=True)
    code = (
        "import sys; from datetime import date\n"
        "from xeroml_pipelines.clickhouse.resource import ClickHouseResource\n"
        "from xeroml_pipelines.demo.generate import DemoSpec, generate\n"
        f"ch = ClickHouseResource(url='chdb://{db}', database='bench')\n"
        f"generate(ch, DemoSpec(start=date.fromisoformat('{DAY}'), days={days}, "
        f"traces_per_day={max(1, round(observations_per_day / OBSERVATIONS_PER_TRACE))}, "
        f"projects=('{PROJECT}', 'acme'), text_scale={TEXT_SCALE}))\n"
        "ch.get_client().command('OPTIMIZE TABLE bench.observations FINAL')\n"
    )
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    (db / ".complete").touch()
    print(f"# generated {db.name} in {time.perf_counter() - t:.0f} s", file=sys.stderr)


def _measure(name: str, db: Path | str, work: Path) -> dict:
    out = work / f"out-{name}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", name, "--db", str(db), "--out", str(out)], stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    report = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    shutil.rmtree(out, ignore_errors=True)
    if proc.returncode:
        raise SystemExit(f"{name} failed with exit code {proc.returncode}")
    result = json.loads(report.decode().strip().splitlines()[-1])
    result["rss_mb"] = usage.ru_maxrss / 1024  # kilobytes on Linux
    return result


@contextmanager
def _clickhouse_server(db: Path):
    """ClickHouse's HTTP interface over the same data (the test suite's HTTP front for chDB, in
    its own process): the client's memory is what the xeroml_http row measures."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "xeroml_pipelines_tests.clickhouse_http", "--path", str(db), "--port", str(port)],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait()


def _medians(names: list[str], db: Path | str, work: Path, repeats: int) -> list[dict]:
    """Every path once per round, round after round: a shared machine's drift (page cache
    writeback, neighbours) then reaches all paths alike and the ratios hold. dlt runs once."""
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for round_ in range(repeats):
        for name in names:
            if name != "dlt" or round_ == 0:
                runs[name].append(_measure(name, db, work))
    results = []
    for name, measured in runs.items():
        if len({(r["rows"], r["bytes"]) for r in measured}) != 1:
            raise SystemExit(f"{name}: runs disagree on rows/bytes: {measured}")
        first = measured[0]
        results.append(
            {
                "name": name,
                "seconds": statistics.median(r["seconds"] for r in measured),
                "rows": first["rows"],
                "bytes": first["bytes"],
                "stored": first["stored"],
                "rss_mb": statistics.median(r["rss_mb"] for r in measured),
            }
        )
    return results


def _table(title: str, results: list[dict], baselines: tuple[str, ...]) -> str:
    base = {r["name"]: r["seconds"] for r in results if r["name"] in baselines}
    head = ["path", "rows", "MB", "file MB", "median s", "rows/s", "MB/s", "peak RSS MB", *(f"x {b}" for b in base)]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        s = r["seconds"]
        cells = [r["name"], f"{r['rows']:,}", f"{r['bytes'] / 1e6:,.0f}", f"{r['stored'] / 1e6:,.1f}"]
        if s:
            cells += [f"{s:.2f}", f"{r['rows'] / s:,.0f}", f"{r['bytes'] / 1e6 / s:,.0f}"]
        else:
            cells += ["", "", ""]
        cells.append(f"{r['rss_mb']:,.0f}")
        cells += [f"{s / b:.2f}" if s and b else "" for b in base.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[200_000, 2_000_000], help="observations per partition")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/xeroml-benchmark"))
    parser.add_argument("--dlt-max-rows", type=int, default=300_000, help="dlt takes minutes per million rows")
    parser.add_argument("--range-rows-per-day", type=int, default=20_000, help="0 skips the backfill comparison")
    parser.add_argument("--child", choices=sorted(CHILDREN))
    parser.add_argument("--db")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](args.db, args.out)))
        return

    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    try:
        import dlt  # noqa: F401

        have_dlt = True
    except ImportError:
        have_dlt = False
        print("# dlt not installed: pip install 'dlt[filesystem]' chdb-sqlalchemy", file=sys.stderr)
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    print(
        f"Machine: {os.cpu_count()} cores ({cpu}), {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
        f"Python {platform.python_version()}; medians of {args.repeats} runs, each in a fresh process.\n"
    )
    for rows in args.rows:
        db = work / f"db-{rows}"
        _generate(db, rows, days=1)
        names = ["engine", "native_final", "native_same", "native_parquet", "xeroml", "xeroml_zstd", "xeroml_gzip"]
        names += ["xeroml_parquet", "xeroml_enriched", "xeroml_dagster"]
        if have_dlt and rows <= args.dlt_max_rows:
            names.append("dlt")
        results = _medians(names, db, work, args.repeats)
        with _clickhouse_server(db) as url:  # holds the engine's folder: after the in-process paths
            results += _medians(["xeroml_http"], url, work, args.repeats)
        baselines = ("native_final", "native_same", "native_parquet", "xeroml")
        print(_table(f"One partition of observations, {rows:,} rows requested", results, baselines))
        print(flush=True)
    if args.range_rows_per_day:
        db = work / f"db-range-{args.range_rows_per_day}"
        _generate(db, args.range_rows_per_day, days=RANGE_DAYS)
        results = _medians(["range_1x30", "single_30x1", "range_1x30_parquet"], db, work, args.repeats)
        print(_table(f"Backfill of {RANGE_DAYS} daily partitions (Dagster runs)", results, ("range_1x30",)))


if __name__ == "__main__":
    main()
