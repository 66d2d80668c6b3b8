"""The pydantic models are the files' contract: every exported line validates, in file order,
and every derived schema is accepted by the system it is for."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import date

import duckdb
import pytest

from xeroml_pipelines import schemas
from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.demo.generate import DemoSpec, generate
from xeroml_pipelines.tables import TABLES as REGISTERED
from xeroml_pipelines_tests.support import Exporter

TABLES = tuple(REGISTERED)


@pytest.fixture(scope="module")
def demo_files(chdb_url: str, tmp_path_factory: pytest.TempPathFactory) -> Exporter:
    ch = ClickHouseResource(url=chdb_url, database=f"s_{uuid.uuid4().hex[:10]}")
    generate(ch, DemoSpec(start=date(2025, 1, 13), days=2, traces_per_day=150))
    exporter = Exporter(ch, tmp_path_factory.mktemp("schemas") / "export", project_id="demo")
    for day in ("2025-01-13", "2025-01-14", "2025-01-15", "2025-01-16"):
        exporter.run(day, tables=TABLES)
    yield exporter
    ch.get_client().command(f"DROP DATABASE `{ch.database}`")


@pytest.mark.parametrize("table", TABLES)
def test_every_line_validates_against_its_model(demo_files: Exporter, table: str) -> None:
    model = schemas.model(table)
    fields = list(model.model_fields)
    lines = [line for day in ("2025-01-13", "2025-01-14", "2025-01-15", "2025-01-16") for line in demo_files.lines(table, day)]
    assert any(line["is_deleted"] for line in lines) or table == "sessions"
    for line in lines:
        assert list(line) == fields  # same columns, same order
        model.model_validate(line)


@pytest.mark.parametrize("table", TABLES)
def test_json_schema_is_the_models(table: str) -> None:
    schema = schemas.json_schema(table)
    assert set(schema["required"]) >= {"id", "project_id", "event_ts", "is_deleted"}
    assert list(schema["properties"]) == list(schemas.model(table).model_fields)


@pytest.mark.parametrize("table", TABLES)
def test_duckdb_ddl_runs_and_reads_the_files(demo_files: Exporter, table: str) -> None:
    con = duckdb.connect()
    con.execute(schemas.ddl(table, "duckdb", "t"))
    cols = {n: schemas.column_type(a, "duckdb") for n, a, _ in schemas.columns(table)}
    path = demo_files.path(table, "2025-01-14")
    con.execute(f"INSERT INTO t SELECT * FROM read_json(?, format='newline_delimited', columns={cols!r})", [str(path)])
    assert con.execute("SELECT count(*) FROM t").fetchone()[0] == len(demo_files.lines(table, "2025-01-14"))


def test_bigquery_schema_shape() -> None:
    fields = {f["name"]: f for f in schemas.bigquery_schema("traces")}
    assert fields["id"] == {"name": "id", "type": "STRING", "mode": "REQUIRED"}
    assert fields["tags"]["mode"] == "REPEATED" and fields["metadata"]["type"] == "JSON"
    assert fields["timestamp"]["type"] == "TIMESTAMP" and fields["input"]["mode"] == "NULLABLE"


def test_redshift_keeps_large_text_in_super() -> None:
    ddl = schemas.ddl("observations", "redshift")
    assert '"input" SUPER' in ddl and '"output" SUPER' in ddl and '"name" VARCHAR(65535)' in ddl


def test_cli_prints_schemas() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "xeroml_pipelines.cli", "schemas", "--format", "bigquery", "--table", "scores"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out) == schemas.bigquery_schema("scores")
    out = subprocess.run(
        [sys.executable, "-m", "xeroml_pipelines.cli", "schemas", "--format", "snowflake"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.count("CREATE TABLE IF NOT EXISTS") == len(TABLES) and "TIMESTAMP_TZ" in out  # every registered table
