"""Field selection (`exclude:` per table): the lines, their counts, the manifests' schema version,
`xeroml schemas` and the DuckDB warehouse table all follow it; identity, version, delete flag
and the window column can never be left out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml
from dagster import AssetKey, materialize

from xeroml_pipelines.config import ConfigError, parse_config
from xeroml_pipelines.defs.location import build_definitions
from xeroml_pipelines.export.recount import recount
from xeroml_pipelines.tables import TABLES
from xeroml_pipelines.windows import Window
from xeroml_pipelines_tests.factories import insert, observation, trace, ts
from xeroml_pipelines_tests.support import Exporter

PRIVATE = ("input", "output", "metadata")
DAY = "2025-01-15"


def _config(exclude: str, mode: str = "incremental", tables: str = "[traces, observations, sessions]") -> str:
    return (
        "clickhouse: {url: 'chdb:///x'}\nexports:\n"
        f"  - {{name: e, project_id: p, start_date: 2025-01-01, destination: {{provider: local}}, mode: {mode}, "
        f"tables: {tables}, exclude: {exclude}}}\n"
    )


@pytest.mark.parametrize(
    ("exclude", "mode", "message"),
    [
        ("{traces: [id]}", "incremental", "'id' can never be excluded"),
        ("{observations: [event_ts]}", "incremental", "'event_ts' can never be excluded"),
        ("{sessions: [is_deleted]}", "incremental", "'is_deleted' can never be excluded"),
        ("{traces: [timestamp]}", "snapshot", "'timestamp' can never be excluded"),  # the window column
        ("{traces: [prompt]}", "incremental", "no column 'prompt'"),
        ("{scores: [comment]}", "incremental", "does not export this table"),
        ("{traces: [input, input]}", "incremental", "listed twice"),
    ],
)
def test_exclusions_a_line_cannot_do_without_are_config_errors(exclude: str, mode: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(_config(exclude, mode), "exports.yaml")
    assert "exports.0.exclude" in str(err.value) and message in str(err.value), str(err.value)


def test_the_window_column_may_go_when_it_is_not_the_window() -> None:
    (export,) = parse_config(_config("{traces: [timestamp, input]}")).exports
    assert export.excluded("traces") == {"timestamp", "input"} and export.excluded("observations") == set()


def test_lines_follow_the_selection_field_by_field(exporter: Exporter, tmp_path: Path) -> None:
    # invalid UTF-8 only in `input` (a column of bytes is inserted on its own)
    insert(exporter.ch, "traces", [trace("a", "2025-01-15 10:00", session_id="s", input=b"bad \xff bytes")])
    insert(exporter.ch, "traces", [trace("b", "2025-01-15 11:00", session_id="s"), trace("b", "2025-01-15 12:00", is_deleted=1)])
    insert(exporter.ch, "observations", [observation("o", "a", "2025-01-15 10:00", total_cost=1.5)])
    full = Exporter(exporter.ch, tmp_path / "full")
    full.run(DAY)
    selection = {"traces": list(PRIVATE), "observations": ["input", "output"], "sessions": ["user_ids", "trace_ids"]}
    exporter.run(DAY, exclude=selection)

    for table, excluded in selection.items():
        kept, whole = exporter.lines(table, DAY), full.lines(table, DAY)
        assert len(kept) == len(whole) > 0
        for line, reference in zip(kept, whole, strict=True):
            assert list(line) == [c for c in TABLES[table].column_names if c not in excluded]  # file order kept
            assert line == {k: v for k, v in reference.items() if k not in excluded}
        manifest, reference_manifest = exporter.manifest(table, DAY), full.manifest(table, DAY)
        assert manifest["excluded"] == sorted(excluded) and reference_manifest["excluded"] == []
        assert manifest["schema_version"] != reference_manifest["schema_version"]
        assert manifest["fingerprint"] == reference_manifest["fingerprint"]  # the same records
    # the only invalid value was in a column left out: nothing was written with U+FFFD
    assert exporter.manifest("traces", DAY)["invalid_utf8"] == 0 and full.manifest("traces", DAY)["invalid_utf8"] == 1
    assert [line["is_deleted"] for line in exporter.lines("traces", DAY)] == [False, True]

    day = Window(DAY, ts(DAY), ts("2025-01-16"))
    (counted,) = recount(exporter.ch, "p1", "traces", "incremental", [day])
    assert (counted.rows, counted.fingerprint) == (2, exporter.manifest("traces", DAY)["fingerprint"])

    exporter.run(DAY, exclude=selection)
    assert exporter.lines("traces", DAY) == [{k: v for k, v in r.items() if k not in PRIVATE} for r in full.lines("traces", DAY)]


def test_schemas_command_follows_an_exports_selection(exporter: Exporter, tmp_path: Path) -> None:
    config = exporter.config(tables=("traces",), exclude={"traces": list(PRIVATE)}).model_dump(mode="json")
    path = tmp_path / "exports.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "XEROML_CONFIG": str(path)}

    def schemas(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "xeroml_pipelines.cli", "schemas", *args]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)

    selected = json.loads(schemas("--export", "exp").stdout)
    assert "input" not in selected["properties"] and "name" in selected["properties"]
    assert '"input"' not in schemas("--export", "exp", "--format", "duckdb").stdout
    assert '"input"' in schemas("--format", "duckdb", "--table", "traces").stdout  # without --export: every field
    unknown = schemas("--export", "nosuch")
    assert unknown.returncode == 2 and "no export named 'nosuch'" in unknown.stderr and "exp" in unknown.stderr


def test_duckdb_table_follows_the_selection_and_a_column_taken_back(exporter: Exporter, tmp_path: Path) -> None:
    insert(exporter.ch, "traces", [trace("a", "2025-01-15 10:00"), trace("b", "2025-01-16 10:00")])
    wh = tmp_path / "w.duckdb"

    def load(day: str, exclude: dict) -> None:
        defs = build_definitions(
            exporter.config(tables=("traces",), exclude=exclude, warehouse={"type": "duckdb", "path": str(wh)})
        )
        assets = [defs.get_assets_def(AssetKey(["exp", "traces"])), defs.get_assets_def(AssetKey(["exp", "warehouse", "traces"]))]
        assert materialize(assets, partition_key=day, resources=defs.resources).success

    load("2025-01-15", {"traces": ["input", "output", "timestamp"]})
    with duckdb.connect(str(wh)) as con:
        columns = [r[0] for r in con.execute("DESCRIBE xeroml_traces").fetchall()]
    assert "input" not in columns and "timestamp" not in columns and "name" in columns

    load("2025-01-16", {"traces": ["output"]})  # input and timestamp taken back in
    with duckdb.connect(str(wh)) as con:
        rows = con.execute("SELECT id, input, timestamp IS NOT NULL FROM xeroml_traces ORDER BY id").fetchall()
    assert rows == [("a", None, False), ("b", '{"q":"hi"}', True)]


@pytest.mark.parametrize("file_format", ["jsonl", "parquet"])
def test_a_reload_takes_the_columns_of_the_file_not_of_todays_config(
    exporter: Exporter, tmp_path: Path, file_format: str
) -> None:
    """A partition exported with `input` left out, loaded again after `exclude:` was emptied:
    the load reads the columns its manifest lists, not the ones the configuration names now."""
    insert(exporter.ch, "traces", [trace("a", "2025-01-15 10:00")])
    wh = tmp_path / "w.duckdb"

    def defs(exclude: dict):
        config = exporter.config(
            tables=("traces",), exclude=exclude, format=file_format, warehouse={"type": "duckdb", "path": str(wh)}
        )
        return build_definitions(config)

    then = defs({"traces": ["input"]})
    export = then.get_assets_def(AssetKey(["exp", "traces"]))
    assert materialize([export], partition_key="2025-01-15", resources=then.resources).success

    now = defs({})
    load = now.get_assets_def(AssetKey(["exp", "warehouse", "traces"]))
    result = materialize([export, load], selection=[load.key], partition_key="2025-01-15", resources=now.resources)
    assert result.success
    with duckdb.connect(str(wh)) as con:
        columns = [r[0] for r in con.execute("DESCRIBE xeroml_traces").fetchall()]
        assert con.execute("SELECT id, name FROM xeroml_traces").fetchall() == [("a", "chat")]
    assert "input" not in columns and "output" in columns  # the file's columns
