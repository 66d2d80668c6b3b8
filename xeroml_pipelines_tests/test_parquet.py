"""Parquet exports (README, "Formats"): the same records as the JSON export of the same
partition, read back with pyarrow, Polars and DuckDB, and the same guarantees."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, materialize

from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.defs.location import build_definitions
from xeroml_pipelines.export import parquet
from xeroml_pipelines.export.parquet import arrow_schema
from xeroml_pipelines.tables import DEFAULT_TABLES, TABLES
from xeroml_pipelines_tests import parquet_records
from xeroml_pipelines_tests.factories import insert, observation, score, trace
from xeroml_pipelines_tests.support import Exporter, documentation

REPO = Path(__file__).resolve().parents[1]
DAY = "2025-01-15"
BIG = "x" * (1024 * 1024 - 3) + "end"  # a 1 MiB prompt
ODD_KEYS = {"": "empty key", "key.with.dots": 'quote"d', "ключ": "значение", "emoji 🚀": "🎉", "tab\there": "new\nline"}


def _data(ch: ClickHouseResource) -> None:
    insert(
        ch,
        "traces",
        [
            trace("t1", "2025-01-15 10:00:00.5", session_id="s1", tags=["a", "🚀"], metadata=ODD_KEYS, input=BIG),
            trace("t2", "2025-01-15 11:00", session_id="s1", user_id=None, public=True),
            trace("t3", "2025-01-15 12:00", session_id="s2"),
            trace("t3", "2025-01-15 13:00", timestamp="2025-01-15 12:00", session_id="s2", is_deleted=1),
            trace("gone", "2025-01-15 14:00", is_deleted=1, tags=["x"], metadata={"k": "v"}),
            trace("next-day", "2025-01-16 01:00"),
        ],
    )
    insert(
        ch,
        "observations",
        [
            observation(
                "o1",
                "t1",
                "2025-01-15 10:00:01",
                usage_details={"input": 10, "output": 18446744073709551615},
                cost_details={"input": 0.000123456789, "total": 12.5},
                provided_cost_details={"x": 99999.999999999999},
                total_cost=12.500123456789,
                end_time="2025-01-15 10:00:02.250",
                prompt_version=7,
                metadata=ODD_KEYS,
            ),
            observation("o2", "t2", "2025-01-15 11:00:01", usage_details={"input": 1}, total_cost=0.5),
            observation("o3", "t1", "2025-01-15 12:00", is_deleted=1, usage_details={"input": 3}, total_cost=1.0),
        ],
    )
    insert(
        ch,
        "scores",
        [
            score("nan", "2025-01-15 10:00", value=math.nan),
            score("inf", "2025-01-15 10:01", value=math.inf),
            score("-inf", "2025-01-15 10:02", value=-math.inf),
            score("ok", "2025-01-15 10:03", value=0.25, comment="emoji 😀"),
            score("del", "2025-01-15 10:04", value=1.0, is_deleted=1),
        ],
    )
    # invalid UTF-8 in a string, a map key and value, and an array element
    ch.get_client().command(
        f"INSERT INTO `{ch.database}`.traces SELECT * REPLACE("
        "'bad' AS id, unhex('68C3FFFE69') AS input, map(unhex('6BFF'), unhex('76FE')) AS metadata, [unhex('80')] AS tags) "
        f"FROM (SELECT * FROM `{ch.database}`.traces WHERE id = 't2')"
    )


@pytest.fixture
def both(ch: ClickHouseResource, tmp_path: Path) -> tuple[Exporter, Exporter]:
    """The same data exported as JSON lines and as Parquet."""
    _data(ch)
    jsonl, pq_ = Exporter(ch, tmp_path / "jsonl"), Exporter(ch, tmp_path / "parquet")
    jsonl.run(DAY)
    pq_.run(DAY, format="parquet")
    return jsonl, pq_


@pytest.mark.parametrize("reader", ["with_pyarrow", "with_polars", "with_duckdb"])
def test_parquet_records_equal_the_json_lines(both: tuple[Exporter, Exporter], reader: str) -> None:
    jsonl, pq_ = both
    read = getattr(parquet_records, reader)
    for table in DEFAULT_TABLES:
        lines = jsonl.lines(table, DAY)
        assert lines, table
        records = read(pq_.path(table, DAY, ".parquet"))
        assert records == lines, table  # every field, in the same order
    scores = {r["id"]: r for r in jsonl.lines("scores", DAY)}
    assert scores["nan"]["value"] is None and scores["inf"]["value"] is None and scores["ok"]["value"] == 0.25
    traces = {r["id"]: r for r in jsonl.lines("traces", DAY)}
    assert traces["t1"]["input"] == BIG and traces["t1"]["metadata"] == ODD_KEYS
    assert traces["bad"]["metadata"] == {"k\ufffd": "v\ufffd"} and traces["bad"]["tags"] == ["\ufffd"]
    assert traces["gone"]["metadata"] is None and traces["gone"]["tags"] is None  # a tombstone's content
    sessions = {r["id"]: r for r in jsonl.lines("sessions", DAY)}
    assert sessions["s2"]["is_deleted"] is True and sessions["s2"]["trace_ids"] is None


def test_parquet_types(both: tuple[Exporter, Exporter]) -> None:
    _, pq_ = both
    schema = pq.read_schema(pq_.path("observations", DAY, ".parquet"))
    assert schema == arrow_schema("observations")
    assert schema.field("start_time").type == pa.timestamp("ms", tz="UTC")
    assert schema.field("total_cost").type == pa.decimal128(18, 12)
    assert schema.field("cost_details").type == pa.map_(pa.string(), pa.decimal128(18, 12))
    assert schema.field("usage_details").type == pa.map_(pa.string(), pa.uint64())
    assert schema.field("is_deleted").type == pa.bool_() and not schema.field("is_deleted").nullable
    assert not schema.field("id").nullable and schema.field("end_time").nullable
    physical = pq.ParquetFile(pq_.path("observations", DAY, ".parquet")).schema
    start = json.loads(physical.column(physical.names.index("start_time")).logical_type.to_json())
    assert (start["Type"], start["isAdjustedToUTC"], start["timeUnit"]) == ("Timestamp", True, "milliseconds")
    assert pq.ParquetFile(pq_.path("observations", DAY, ".parquet")).metadata.row_group(0).column(0).compression == "ZSTD"
    # every field a tombstone nulls can be null
    for table in DEFAULT_TABLES:
        for field in arrow_schema(table):
            assert field.nullable or field.name in TABLES[table].tombstone_columns, (table, field.name)


def test_parquet_manifest_and_rerun(both: tuple[Exporter, Exporter]) -> None:
    jsonl, pq_ = both
    path = pq_.path("traces", DAY, ".parquet")
    first = path.read_bytes()
    m = pq_.manifest("traces", DAY)
    j = jsonl.manifest("traces", DAY)
    assert m["file_format"] == "parquet" and m["compression"] == "zstd" and j["file_format"] == "jsonl"
    assert m["object_key"] == "traces/2025-01-15.parquet"
    assert m["bytes"] == len(first) and m["sha256"] == hashlib.sha256(first).hexdigest()
    assert (m["rows"], m["tombstones"], m["invalid_utf8"], m["fingerprint"]) == (
        j["rows"],
        j["tombstones"],
        j["invalid_utf8"],
        j["fingerprint"],
    )
    assert m["parquet_schema"] and j["parquet_schema"] is None
    pq_.run(DAY, format="parquet")
    assert path.read_bytes() == first


def test_parquet_codecs(ch: ClickHouseResource, tmp_path: Path) -> None:
    _data(ch)
    insert(ch, "observations", [observation(f"m{i}", "t1", "2025-01-15 09:00", input="hello " * (i % 50)) for i in range(2000)])
    sizes = {}
    for codec in ("none", "snappy", "gzip", "zstd"):
        e = Exporter(ch, tmp_path / codec)
        e.run(DAY, tables=("observations",), format="parquet", compression=codec)
        path = e.path("observations", DAY, ".parquet")
        expected = "UNCOMPRESSED" if codec == "none" else codec.upper()
        assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == expected
        assert parquet_records.with_pyarrow(path) == parquet_records.with_pyarrow(
            tmp_path / "none" / "observations" / f"{DAY}.parquet"
        )
        sizes[codec] = path.stat().st_size
    assert sizes["zstd"] < sizes["none"]


def test_row_groups_are_cut_by_the_rows_not_the_batches(
    ch: ClickHouseResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    insert(ch, "traces", [trace(f"t{i:04d}", f"2025-01-15 10:{i % 60:02d}", input="y" * (i % 97)) for i in range(3000)])
    monkeypatch.setattr(parquet, "ROW_GROUP_ROWS", 1000)
    monkeypatch.setattr(parquet, "ROW_GROUP_BYTES", 150_000)
    files = []
    for batch_rows in (64, 1000, 65_536):
        e = Exporter(ch, tmp_path / str(batch_rows))
        e.run(DAY, tables=("traces",), format="parquet", batch_rows=batch_rows)
        files.append(e.path("traces", DAY, ".parquet").read_bytes())
    assert files[0] == files[1] == files[2]  # the batches ClickHouse sent do not show in the file
    meta = pq.ParquetFile(tmp_path / "64" / "traces" / f"{DAY}.parquet").metadata
    groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sum(groups) == 3000 and len(groups) > 3 and max(groups) <= 1000


def _warehouse_tables(path: Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(path)) as con:
        return {
            t: con.execute(f"SELECT * FROM xeroml_{t} ORDER BY id").fetchall() for t in (*DEFAULT_TABLES, "traces__tombstones")
        }


def test_duckdb_loads_parquet_into_the_same_tables_as_json(ch: ClickHouseResource, tmp_path: Path) -> None:
    """Two days, an update and a delete across them: the warehouse loaded from Parquet files (read_parquet)
    equals the one loaded from JSON lines, table by table, row by row."""
    _data(ch)
    insert(
        ch,
        "traces",
        [
            trace("t1", "2025-01-16 08:00", timestamp="2025-01-15 10:00:00.5", session_id="s1", name="renamed"),
            trace("t2", "2025-01-16 09:00", timestamp="2025-01-15 11:00", session_id="s1", is_deleted=1),
        ],
    )
    tables = {}
    for fmt in ("jsonl", "parquet"):
        e = Exporter(ch, tmp_path / fmt)
        defs = build_definitions(e.config(format=fmt, warehouse={"type": "duckdb", "path": str(tmp_path / f"{fmt}.duckdb")}))
        keys = [AssetKey(["exp", t]) for t in DEFAULT_TABLES] + [AssetKey(["exp", "warehouse", t]) for t in DEFAULT_TABLES]
        for day in (DAY, "2025-01-16", DAY):  # the 15th loaded again after the 16th
            assert materialize([defs.get_assets_def(k) for k in keys], partition_key=day, resources=defs.resources).success
        tables[fmt] = _warehouse_tables(tmp_path / f"{fmt}.duckdb")
    assert tables["parquet"] == tables["jsonl"]
    traces = {row[0]: row for row in tables["parquet"]["traces"]}
    assert set(traces) == {"t1", "bad", "t3"} - {"t3"} | {"next-day"}
    costs = {row[0]: row for row in tables["parquet"]["observations"]}
    assert set(costs) == {"o1", "o2"}


def _demo(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("XEROML_CONFIG", "DAGSTER_HOME")}
    exe = Path(sys.executable).with_name("xeroml")
    done = subprocess.run(
        [str(exe), "demo", "--days", "2", "--traces-per-day", "150", *args], cwd=cwd, env=env, capture_output=True
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    return done.stdout.decode()


def test_readme_demo_in_parquet_and_its_duckdb_queries(tmp_path: Path) -> None:
    """`xeroml demo --format parquet` replaces the JSON files of the same partitions, and README's
    DuckDB query and shell one-liner, run verbatim, read the records the JSON files held."""
    _demo(tmp_path)
    export = tmp_path / "xeroml-export"
    with duckdb.connect() as con:
        expected = con.execute(
            "SELECT type, count(*) FROM read_json(?) WHERE NOT is_deleted GROUP BY type ORDER BY type",
            [str(export / "observations" / "*.jsonl")],
        ).fetchall()
    _demo(tmp_path, "--format", "parquet")  # exits 0 only if the warehouse loads of the Parquet files succeeded
    assert not list(export.rglob("*.jsonl")) and len(list((export / "observations").glob("*.parquet"))) >= 2
    readme = documentation()
    query = readme.split("```sql\n-- DuckDB, Parquet files\n", 1)[1].split("```", 1)[0]
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)  # README runs it where `xeroml demo` writes ./xeroml-export
        rows = duckdb.connect().execute(query).fetchall()
    finally:
        os.chdir(cwd)
    assert [(t, n) for t, n, _ in rows] == expected and all(cost > 0 for _, _, cost in rows if _ == "GENERATION")
    one_liner = readme.split('```bash\npython -c "import duckdb;', 1)[1].split("\n```", 1)[0]
    shell = subprocess.run(
        ["bash", "-c", 'python -c "import duckdb;' + one_liner],
        cwd=tmp_path,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
    )
    assert shell.returncode == 0, shell.stderr
    for type_, n in expected:
        assert re.search(rf"│ {type_}\s+│\s+{n} │", shell.stdout), shell.stdout


def test_field_selection_in_parquet(ch: ClickHouseResource, tmp_path: Path) -> None:
    """Excluded columns are not in the file's schema; the rest equals the JSON export of the same selection."""
    _data(ch)
    exclude = {"traces": ["input", "output", "metadata"], "observations": ["input", "output"]}
    jsonl, pq_ = Exporter(ch, tmp_path / "jsonl"), Exporter(ch, tmp_path / "parquet")
    jsonl.run(DAY, tables=("traces", "observations"), exclude=exclude)
    pq_.run(DAY, tables=("traces", "observations"), exclude=exclude, format="parquet")
    for table in ("traces", "observations"):
        path = pq_.path(table, DAY, ".parquet")
        schema = pq.read_schema(path)
        assert schema == arrow_schema(table, frozenset(exclude[table]))
        assert not set(exclude[table]) & set(schema.names)
        assert parquet_records.with_duckdb(path) == jsonl.lines(table, DAY)
        m, j = pq_.manifest(table, DAY), jsonl.manifest(table, DAY)
        assert (
            (m["schema_version"], m["excluded"])
            == (j["schema_version"], j["excluded"])
            == (j["schema_version"], sorted(exclude[table]))
        )
    full = Exporter(ch, tmp_path / "full")
    full.run(DAY, tables=("traces",), format="parquet")
    assert full.manifest("traces", DAY)["parquet_schema"] != pq_.manifest("traces", DAY)["parquet_schema"]


def test_schemas_command_prints_the_parquet_schema() -> None:
    exe = Path(sys.executable).with_name("xeroml")
    done = subprocess.run([str(exe), "schemas", "--format", "parquet", "--table", "observations"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "-- observations\n" + arrow_schema("observations").to_string(show_schema_metadata=False)
    assert "total_cost: decimal128(18, 12)" in done.stdout and "start_time: timestamp[ms, tz=UTC] not null" in done.stdout


def test_stale_parquet_object_that_may_not_be_deleted_becomes_a_zero_row_file(
    ch: ClickHouseResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the right to delete, a stale object is replaced by a file of no records: for Parquet a
    valid zero-row file, so a `*.parquet` glob still reads; `verify` does not count it as an orphan."""
    from xeroml_pipelines.destinations.local import LocalFolder
    from xeroml_pipelines.export.layout import Layout
    from xeroml_pipelines.export.verify import verify

    insert(ch, "traces", [trace("a", "2025-01-15 10:00")])
    e = Exporter(ch, tmp_path / "out")
    e.run(DAY, tables=("traces",), format="parquet")

    def refuse(self, key: str) -> None:
        raise PermissionError(key)

    monkeypatch.setattr(LocalFolder, "delete", refuse)
    insert(ch, "traces", [trace("a", "2025-01-16 10:00", timestamp="2025-01-15 10:00")])  # moves to the 16th
    e.run(DAY, tables=("traces",), format="parquet")
    stale = e.path("traces", DAY, ".parquet")
    assert pq.ParquetFile(stale).metadata.num_rows == 0 and pq.read_schema(stale) == arrow_schema("traces")
    assert e.manifest("traces", DAY)["object_key"] is None
    e.run("2025-01-16", tables=("traces",), format="parquet")
    rows = duckdb.connect().execute("SELECT id FROM read_parquet(?)", [str(tmp_path / "out" / "traces" / "*.parquet")]).fetchall()
    assert rows == [("a",)]
    layout = Layout(prefix="", compression="zstd", file_format="parquet")
    report = verify(LocalFolder(path=str(tmp_path / "out")), layout, "traces")
    assert report.ok, report.problems
