"""Snowflake through fakesnow (COPY INTO a VARIANT staging table from a file:// stage, then
MERGE), and Redshift, which has no stand-in: its exact COPY/MERGE SQL, with the MERGE run on DuckDB."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import fakesnow
import pytest
import snowflake.connector
from dagster import AssetKey, materialize

from xeroml_pipelines import schemas
from xeroml_pipelines.config import ConfigError, parse_config
from xeroml_pipelines.defs.location import build_definitions
from xeroml_pipelines.warehouses import redshift
from xeroml_pipelines.warehouses import snowflake as snowflake_warehouse
from xeroml_pipelines.warehouses.merge import merge_sql
from xeroml_pipelines_tests.factories import insert, trace
from xeroml_pipelines_tests.support import Exporter

# the warehouse configuration of an export loading into the fakesnow account `_snowflake` sets up
SNOWFLAKE = {
    "type": "snowflake",
    "account": "xeroml",
    "user": "loader",
    "database": "XEROML",
    "schema_name": "EXPORTS",
    "stage": "xeroml_stage",
}


def _snowflake(root: Path):
    con = snowflake.connector.connect()
    cur = con.cursor()
    for statement in (
        "CREATE DATABASE IF NOT EXISTS XEROML",
        "CREATE SCHEMA IF NOT EXISTS XEROML.EXPORTS",
        "USE SCHEMA XEROML.EXPORTS",
        f"CREATE STAGE IF NOT EXISTS xeroml_stage URL = '{root.as_uri()}/xeroml-export/'",
        f"CREATE STAGE IF NOT EXISTS my_s3_stage URL = '{root.as_uri()}/'",
    ):
        cur.execute(statement)
    return con


# Hive folders are checked as SQL below: fakesnow reads a staged file with DuckDB, which turns a
# `date=...` folder into an extra column that Snowflake's COPY never adds.
@pytest.mark.parametrize("layout,file_format", [("dated", "jsonl"), ("dated", "parquet")])
def test_snowflake_load_through_dagster(
    exporter: Exporter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str, file_format: str
) -> None:
    if file_format == "parquet":
        # fakesnow's COPY ... MATCH_BY_COLUMN_NAME looks the target's columns up where temporary
        # tables are not listed: here the staging table is a plain one, the statements otherwise as sent.
        original = snowflake_warehouse.staging_statements
        monkeypatch.setattr(
            snowflake_warehouse,
            "staging_statements",
            lambda *a: [s.replace("TEMPORARY TABLE", "TABLE") for s in original(*a)],
        )
    insert(
        exporter.ch,
        "traces",
        [
            trace("a", "2025-01-15 10:00", name="a1", tags=["x"], metadata={"k": "v"}),
            trace("b", "2025-01-15 11:00"),
            trace("c", "2025-01-15 12:00"),
            trace("a", "2025-01-16 09:00", timestamp="2025-01-15 10:00", name="a2", tags=["x", "y"], metadata={"k": "v2"}),
            trace("c", "2025-01-16 10:00", timestamp="2025-01-15 12:00", is_deleted=1),
        ],
    )
    root = tmp_path / "bucket"
    warehouse = dict(SNOWFLAKE)
    defs = build_definitions(
        exporter.config(
            tables=("traces",),
            destination={"provider": "local", "path": str(root), "prefix": "xeroml-export"},
            warehouse=warehouse,
            layout=layout,
            format=file_format,
        )
    )
    assets = [defs.get_assets_def(AssetKey(["exp", "traces"])), defs.get_assets_def(AssetKey(["exp", "warehouse", "traces"]))]
    with fakesnow.patch():
        con = _snowflake(root)
        for day in ("2025-01-15", "2025-01-16", "2025-01-15"):  # the 15th loaded again, after the 16th
            assert materialize(assets, partition_key=day, resources=defs.resources).success
        cur = con.cursor()
        rows = cur.execute('SELECT "id", "name", "tags", "metadata" FROM xeroml_traces ORDER BY 1').fetchall()
        assert [(r[0], r[1]) for r in rows] == [("a", "a2"), ("b", "chat")]
        assert json.loads(rows[0][2]) == ["x", "y"] and json.loads(rows[0][3]) == {"k": "v2"}
        assert cur.execute("SELECT id FROM xeroml_traces__tombstones").fetchall() == [("c",)]
        if file_format == "parquet":
            return

        # the spec's example, verbatim, into a one-VARIANT-column table: our folder holds only data
        cur.execute("CREATE TABLE xeroml_traces_raw (v VARIANT)")
        spec = "COPY INTO xeroml_traces FROM @my_s3_stage/xeroml-export/traces/ FILE_FORMAT = (TYPE = 'JSON');"
        cur.execute(spec.replace("INTO xeroml_traces", "INTO xeroml_traces_raw"))
        lines = sum(len(p.read_text().splitlines()) for p in (root / "xeroml-export" / "traces").rglob("*.jsonl"))
        assert lines == 3  # b on the 15th; a and the tombstone of c on the 16th
        assert cur.execute("SELECT count(*), count(v:id) FROM xeroml_traces_raw").fetchone() == (lines, lines)


def test_snowflake_statements_name_one_file() -> None:
    from xeroml_pipelines.warehouses.snowflake import stage_path, staging_statements

    assert stage_path("xeroml-export/traces/2025-01-15.jsonl.gz", "xeroml-export") == ("traces", "2025-01-15.jsonl.gz")
    assert stage_path("traces/2025-01-15/13.jsonl", "") == ("traces/2025-01-15", "13.jsonl")
    statements = staging_statements("traces", "XEROML.EXPORTS.STAGE", "traces", "2025-01-15.jsonl")
    assert (
        statements[1]
        == "COPY INTO xeroml_raw FROM @XEROML.EXPORTS.STAGE/traces/ FILES = ('2025-01-15.jsonl') FILE_FORMAT = (TYPE = 'JSON')"
    )
    assert 'v:"event_ts"::TIMESTAMP_TZ AS "event_ts"' in statements[2] and 'v:"tags"::ARRAY AS "tags"' in statements[2]

    # hive layout: the partition's folder below the stage, its one file named
    folder, name = stage_path("xeroml-export/traces/date=2025-01-15/hour=13/data.jsonl", "xeroml-export")
    assert (folder, name) == ("traces/date=2025-01-15/hour=13", "data.jsonl")
    assert staging_statements("traces", "S", folder, name)[1] == (
        "COPY INTO xeroml_raw FROM @S/traces/date=2025-01-15/hour=13/ FILES = ('data.jsonl') FILE_FORMAT = (TYPE = 'JSON')"
    )


def test_snowflake_parquet_statements() -> None:
    from xeroml_pipelines.warehouses.snowflake import staging_statements

    statements = staging_statements("observations", "S", "observations", "2025-01-15.parquet", frozenset({"input"}), "parquet")
    assert statements[0].startswith('CREATE OR REPLACE TEMPORARY TABLE xeroml_staging ("id" VARCHAR, ')
    assert '"metadata" OBJECT' in statements[0] and '"input"' not in statements[0]
    assert statements[1] == (
        "COPY INTO xeroml_staging FROM @S/observations/ FILES = ('2025-01-15.parquet') "
        "FILE_FORMAT = (TYPE = PARQUET) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE"
    )


def test_redshift_parquet_copy_sql() -> None:
    role = "arn:aws:iam::123456789012:role/redshift-export-reader"
    uri = "s3://bkt/xeroml-export/observations/date=2025-01-15/data.parquet"
    statements = redshift.load_statements("observations", "a.t", uri, role, "eu-west-1", frozenset({"input"}), "parquet")
    # the file's columns in its order (COPY from Parquet matches by position), costs exact
    assert statements[0].startswith('CREATE TEMP TABLE xeroml_staging ("id" VARCHAR(65535), "trace_id" VARCHAR(65535), ')
    assert '"total_cost" DECIMAL(18, 12)' in statements[0] and '"cost_details" SUPER' in statements[0]
    assert '"input"' not in statements[0] and '"output" SUPER' in statements[0]
    assert statements[1] == f"COPY xeroml_staging FROM '{uri}' IAM_ROLE '{role}' FORMAT AS PARQUET REGION 'eu-west-1'"
    assert statements[2:-1] == merge_sql("observations", "a.t", "xeroml_staging", exclude=frozenset({"input"})).statements()


def test_redshift_copy_and_merge_sql() -> None:
    role = "arn:aws:iam::123456789012:role/redshift-export-reader"
    statements = redshift.load_statements(
        "traces", "analytics.xeroml_traces", "s3://bkt/xeroml-export/traces/2025-01-15.jsonl.gz", role, "eu-west-1"
    )
    assert statements[0] == "CREATE TEMP TABLE xeroml_staging (LIKE analytics.xeroml_traces)"
    assert statements[1] == (
        "COPY xeroml_staging FROM 's3://bkt/xeroml-export/traces/2025-01-15.jsonl.gz' "
        f"IAM_ROLE '{role}' FORMAT AS JSON 'auto' TIMEFORMAT 'auto' GZIP REGION 'eu-west-1'"
    )
    assert statements[2:-1] == merge_sql("traces", "analytics.xeroml_traces", "xeroml_staging").statements()
    assert statements[-1] == "DROP TABLE xeroml_staging"
    plain = redshift.load_statements("traces", "t", "s3://b/k.jsonl", role, None)[1]
    assert plain.endswith("TIMEFORMAT 'auto'")
    # Redshift's MERGE takes no extra WHEN conditions: ours filter the source instead
    for statement in statements:
        assert "WHEN MATCHED AND" not in statement
    ddl = schemas.ddl("observations", "redshift", "analytics.xeroml_observations")
    assert '"input" SUPER' in ddl and '"metadata" SUPER' in ddl and '"event_ts" TIMESTAMPTZ NOT NULL' in ddl


def test_redshift_merge_logic_on_duckdb(tmp_path: Path) -> None:
    """The statements Redshift would run after its COPY, run on DuckDB over a staged file."""
    con = duckdb.connect()
    con.execute(schemas.ddl("traces", "duckdb", "xeroml_traces"))
    merge = merge_sql("traces", "xeroml_traces", "xeroml_staging")
    con.execute(merge.tombstones_ddl("VARCHAR", "TIMESTAMPTZ"))
    columns = {n: schemas.column_type(a, "duckdb") for n, a, _ in schemas.columns("traces")}

    def load(lines: list[dict]) -> None:
        path = tmp_path / "f.jsonl"
        path.write_text("".join(json.dumps(x) + "\n" for x in lines))
        con.execute(
            f"CREATE TEMP TABLE xeroml_staging AS SELECT * FROM read_json(?, format='newline_delimited', columns={columns!r})",
            [str(path)],
        )
        for statement in redshift.load_statements(
            "traces", "xeroml_traces", "s3://b/k.jsonl", "arn:aws:iam::123456789012:role/r", None
        )[2:]:
            con.execute(statement)

    base = {"project_id": "p", "timestamp": "2025-01-15T10:00:00.000Z", "created_at": "2025-01-15T10:00:00.000Z"}
    load(
        [
            {
                **base,
                "id": "a",
                "name": "a1",
                "updated_at": "2025-01-15T10:00:00.000Z",
                "event_ts": "2025-01-15T10:00:00.000Z",
                "is_deleted": False,
            },
            {
                **base,
                "id": "b",
                "name": "b1",
                "updated_at": "2025-01-15T10:00:00.000Z",
                "event_ts": "2025-01-15T10:00:00.000Z",
                "is_deleted": False,
            },
        ]
    )
    load(
        [
            {
                **base,
                "id": "a",
                "name": "a2",
                "updated_at": "2025-01-16T10:00:00.000Z",
                "event_ts": "2025-01-16T10:00:00.000Z",
                "is_deleted": False,
            },
            {
                **base,
                "id": "b",
                "updated_at": "2025-01-16T10:00:00.000Z",
                "event_ts": "2025-01-16T10:00:00.000Z",
                "is_deleted": True,
            },
        ]
    )
    assert con.execute("SELECT id, name FROM xeroml_traces").fetchall() == [("a", "a2")]


def test_redshift_needs_an_s3_export() -> None:
    text = """
clickhouse: {url: 'chdb:///x'}
exports:
  - name: e
    project_id: p
    start_date: 2025-01-01
    destination: {provider: gcs, bucket: my-bucket}
    warehouse: {type: redshift, host: h, database: d, user: u, iam_role_arn: 'arn:aws:iam::123456789012:role/r'}
"""
    with pytest.raises(ConfigError, match="must be provider: s3"):
        parse_config(text)


def test_a_warehouse_password_is_read_from_its_variable_when_connecting(monkeypatch) -> None:
    """The configuration holds the variable's name only; the resource reads the secret as it
    connects, and an unset variable is named in the error instead of a driver's login failure."""
    from xeroml_pipelines.warehouses.snowflake import SnowflakeWarehouse

    warehouse = SnowflakeWarehouse(**{**SNOWFLAKE, "password_env": "XEROML_TEST_SF_PASSWORD"})
    assert "XEROML_TEST_SF_PASSWORD" in repr(warehouse)
    monkeypatch.delenv("XEROML_TEST_SF_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="warehouse.password_env: the environment variable XEROML_TEST_SF_PASSWORD is unset"):
        warehouse.connect()
    seen: dict[str, object] = {}
    monkeypatch.setattr(snowflake.connector, "connect", lambda **kwargs: seen.update(kwargs))
    monkeypatch.setenv("XEROML_TEST_SF_PASSWORD", "s3cret")
    warehouse.connect()
    assert seen["password"] == "s3cret" and seen["schema"] == "EXPORTS"
    redshift_warehouse = redshift.RedshiftWarehouse(
        host="h", database="d", user="u", password_env="XEROML_TEST_RS_PASSWORD", iam_role_arn="arn:aws:iam::123456789012:role/r"
    )
    with pytest.raises(ConfigError, match="the environment variable XEROML_TEST_RS_PASSWORD is unset"):
        redshift_warehouse.connect()
