"""The code location as Dagster and a newcomer see it: definitions, downstream inputs, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import date
from pathlib import Path

import pytest
import yaml
from dagster import AssetIn, AssetKey, DagsterInstance, DailyPartitionsDefinition, asset, materialize
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.defs.location import build_definitions, export_resources
from xeroml_pipelines.demo.generate import DemoSpec, generate
from xeroml_pipelines.export.reference import ExportedPartition
from xeroml_pipelines_tests.factories import insert, trace
from xeroml_pipelines_tests.support import Exporter, assert_same_exports


def _python(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("XEROML_CONFIG", "DAGSTER_HOME")}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300)


def test_code_location_loads_embedded_default(tmp_path: Path) -> None:
    proc = _python(
        "from xeroml_pipelines.definitions import defs\n"
        "defs = defs()\n"
        "g = defs.resolve_asset_graph()\n"
        "print(sorted('/'.join(k.path) for k in g.get_all_asset_keys()))\n"
        "from xeroml_pipelines.config import load_config\n"
        "from xeroml_pipelines.defs.location import export_resources\n"
        "io_manager = export_resources(load_config().exports[0])['local_io_manager']\n"
        "print(type(io_manager).__name__, defs.resources['clickhouse'].url)",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    keys, resources = proc.stdout.strip().splitlines()
    tables = ["observations", "scores", "sessions", "traces"]
    sources = ["clickhouse/observations", "clickhouse/scores", "clickhouse/traces"]  # what the exports read
    assert keys == str(sources + [f"local/{t}" for t in tables] + [f"local/warehouse/{t}" for t in tables])
    assert resources == f"LocalExportIOManager chdb://{tmp_path}/xeroml-demo-db"


def test_a_local_export_imports_no_cloud_sdk(tmp_path: Path) -> None:
    """The embedded default's code location (local folder, DuckDB) loads without any provider's
    Dagster integration or SDK: they are imported only by an export that uses them."""
    proc = _python(
        "import sys\n"
        "from xeroml_pipelines.definitions import defs\n"
        "defs().resolve_asset_graph()\n"
        "clouds = ('boto3', 'botocore', 'dagster_aws', 'dagster_gcp', 'dagster_azure', 'azure', 'snowflake')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in clouds or m.startswith('google.cloud')))",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_code_location_refuses_a_bad_config_naming_the_field(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "clickhouse: {url: 'chdb:///x'}\nexports:\n"
        "  - {name: e, project_id: p, destination: {provider: gcs}, start_date: 2025-01-01}\n"
    )
    proc = _python("from xeroml_pipelines.definitions import defs; defs()", tmp_path, XEROML_CONFIG=str(cfg))
    assert proc.returncode != 0
    assert "ConfigError" in proc.stderr and "exports.0.destination" in proc.stderr and str(cfg) in proc.stderr


def test_downstream_asset_receives_a_reference_not_the_data(exporter: Exporter) -> None:
    insert(exporter.ch, "traces", [trace("a", "2025-01-15 10:00"), trace("b", "2025-01-15 11:00")])
    defs = build_definitions(exporter.config(tables=("traces",)))
    export_asset = defs.get_assets_def(AssetKey(["exp", "traces"]))
    seen: dict[str, object] = {}

    @asset(
        partitions_def=DailyPartitionsDefinition("2025-01-01", timezone="UTC"),
        ins={"traces": AssetIn(key=AssetKey(["exp", "traces"]))},
        io_manager_key="mem",
    )
    def loaded(traces: ExportedPartition) -> None:
        seen["traces"] = traces

    from dagster import mem_io_manager

    resources = {**defs.resources, "mem": mem_io_manager}
    materialize([export_asset, loaded], partition_key="2025-01-15", resources=resources)
    ref = seen["traces"]
    assert isinstance(ref, ExportedPartition)
    assert ref.rows == 2 and ref.partition == "2025-01-15"
    assert ref.uri == (exporter.out / "traces" / "2025-01-15.jsonl").as_uri()
    assert ref.bytes == (exporter.out / "traces" / "2025-01-15.jsonl").stat().st_size

    # a partition that was never exported is missing, as Dagster's allow_missing_partitions expects
    io_manager = export_resources(exporter.config().exports[0])["exp_io_manager"]
    from dagster import build_input_context

    ctx = build_input_context(
        asset_key=AssetKey(["exp", "traces"]),
        partition_key="2025-01-20",
        asset_partitions_def=DailyPartitionsDefinition("2025-01-01", timezone="UTC"),
    )
    with pytest.raises(FileNotFoundError, match="2025-01-20"):
        io_manager.load_input(ctx)


def test_demo_data_is_deterministic_by_seed(chdb_url: str) -> None:
    def fingerprint(seed: int) -> list[tuple]:
        ch = ClickHouseResource(url=chdb_url, database=f"d_{uuid.uuid4().hex[:12]}")
        try:
            generate(ch, DemoSpec(start=date(2025, 1, 13), days=2, traces_per_day=100, seed=seed))
            return [
                ch.get_client().query(f"SELECT count(), sum(cityHash64(*)) FROM `{ch.database}`.`{t}`").first_row
                for t in ("traces", "observations", "scores")
            ]
        finally:
            ch.get_client().command(f"DROP DATABASE IF EXISTS `{ch.database}`")

    first = fingerprint(1)
    assert first == fingerprint(1)
    assert first != fingerprint(2)
    traces, observations, scores = (n for n, _ in first)
    assert traces > 2 * 100 * 3  # v1 rows of three projects plus updates and deletes
    assert observations > 4 * traces // 2 and scores > 0


def test_demo_data_has_what_the_contract_is_about(chdb_url: str) -> None:
    ch = ClickHouseResource(url=chdb_url, database=f"d_{uuid.uuid4().hex[:12]}")
    generate(ch, DemoSpec(start=date(2025, 1, 13), days=2, traces_per_day=300))
    q = lambda sql: ch.get_client().query(sql.replace("DB", f"`{ch.database}`")).first_row[0]  # noqa: E731
    assert q("SELECT countIf(is_deleted = 1) FROM DB.traces") > 0
    assert q("SELECT countIf(is_deleted = 1) FROM DB.observations") > 0
    assert (
        q("SELECT countIf(toDate(event_ts) > toDate(timestamp) + 0) FROM DB.traces WHERE is_deleted = 0") > 0
    )  # late or updated
    assert q("SELECT count() FROM (SELECT id FROM DB.traces GROUP BY id HAVING count() > 1)") > 0  # several versions
    assert q("SELECT uniqExact(project_id) FROM DB.traces") == 3
    assert (
        q(
            "SELECT count() FROM (SELECT session_id FROM DB.traces WHERE session_id IS NOT NULL "
            "GROUP BY session_id HAVING uniqExact(project_id) > 1)"
        )
        > 0
    )
    assert q("SELECT countIf(parent_observation_id IS NOT NULL AND type = 'EVENT') FROM DB.observations") > 0
    assert q("SELECT uniqExact(type) FROM DB.observations") == 3
    ch.get_client().command(f"DROP DATABASE `{ch.database}`")


def test_cli_demo_exports_the_demo_project(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("XEROML_CONFIG", "DAGSTER_HOME")}
    cmd = [sys.executable, "-m", "xeroml_pipelines.cli", "demo", "--days", "2", "--traces-per-day", "60"]
    first = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "seeded demo data" in first.stdout
    out = tmp_path / "xeroml-export"
    assert f"files under {out}" in first.stdout
    for table in ("traces", "observations", "scores", "sessions"):
        files = sorted((out / table).glob("*.jsonl"))
        assert files, table
        for f in files:
            for line in f.read_bytes().splitlines():
                assert json.loads(line)["project_id"] == "demo"
    snapshot = {p: p.read_bytes() for p in out.rglob("*.jsonl")}

    # a seeded database: --days says it adds nothing, and the export covers what was seeded
    second = subprocess.run([*cmd[:-4], "--days", "30"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "the database already holds traces (2025-01-13 .. 2025-01-17): nothing seeded; --days" in second.stdout
    assert "delete ./xeroml-demo-db to seed anew" in second.stdout
    assert {p: p.read_bytes() for p in out.rglob("*.jsonl")} == snapshot
    # the UI's partitions (the embedded default, XEROML_HOME here) end where the demo data does
    from xeroml_pipelines.config import default_config
    from xeroml_pipelines.defs.keys import partitions_for

    keys = partitions_for(default_config(tmp_path).exports[0]).get_partition_keys()
    assert keys == ["2025-01-13", "2025-01-14", "2025-01-15", "2025-01-16", "2025-01-17"]

    helped = subprocess.run([*cmd[:4], "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    text = " ".join(helped.stdout.split())
    for said in ("--days DAYS days of demo data to seed", "traces per day and project to seed", "random seed of the demo"):
        assert said in text, helped.stdout
    assert "replaces the other format" in text

    third = subprocess.run([*cmd, "--format", "parquet"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "writing parquet files: a partition has one object, so each replaces" in third.stdout
    assert "read {table}/*.parquet from now on" in third.stdout


def test_cli_export_runs_a_range_as_a_backfill_does(tmp_path: Path) -> None:
    """`xeroml export FIRST LAST`: max_partitions_per_run partitions per run (one scan per table for
    the run's range), the same files and manifests as one run per partition."""
    days = ["2025-01-14", "2025-01-15", "2025-01-16"]
    home = tmp_path / "dagster_home"
    home.mkdir()

    def xeroml(per_run: int, *args: str) -> subprocess.CompletedProcess:
        config = {
            "clickhouse": {"url": f"chdb://{tmp_path / 'engine'}"},
            "exports": [
                {
                    "name": "exp",
                    "project_id": "demo",
                    "start_date": days[0],
                    "destination": {"provider": "local", "path": str(tmp_path / f"out-{per_run}")},
                    "max_partitions_per_run": per_run,
                    "retries": 0,
                }
            ],
        }
        path = tmp_path / f"exports-{per_run}.yaml"
        path.write_text(yaml.safe_dump(config))
        env = {**os.environ, "XEROML_CONFIG": str(path), "DAGSTER_HOME": str(home)}
        cmd = [sys.executable, "-m", "xeroml_pipelines.cli", *args]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    xeroml(2, "seed", "--start", days[0], "--days", "3", "--traces-per-day", "40")
    ranged = xeroml(2, "export", days[0], days[-1])
    printed = [line.split(": ")[0] for line in ranged.stdout.splitlines() if line.startswith("exp 2025")]
    assert printed == [f"exp {d}" for d in days] and ranged.stdout.count(": ok traces=") == 3
    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        ranges = sorted((r.tags[ASSET_PARTITION_RANGE_START_TAG], r.tags[ASSET_PARTITION_RANGE_END_TAG]) for r in runs)
    assert ranges == [(days[0], days[1]), (days[2], days[2])]  # two runs for three partitions

    xeroml(1, "export", days[0], days[-1])  # one run per partition
    a, b = Exporter(None, tmp_path / "out-2"), Exporter(None, tmp_path / "out-1")  # type: ignore[arg-type]
    tables = ("traces", "observations", "scores", "sessions")
    assert_same_exports(a, b, tables, days, ("rows", "tombstones", "bytes", "sha256", "fingerprint", "window"))
    assert a.manifest("observations", days[1])["rows"] > 0
