"""BigQuery through bqemulator: the GCS export loaded with load_table_from_uri and an explicit
schema into staging, then MERGEd; and the spec's `bq load` (NDJSON into the table) on our files."""

from __future__ import annotations

import pytest
from dagster import AssetKey, materialize
from google.cloud import bigquery

from xeroml_pipelines import schemas
from xeroml_pipelines.defs.location import build_definitions
from xeroml_pipelines.warehouses.bigquery import BigQueryWarehouse, load_job_config, parquet_projection
from xeroml_pipelines.warehouses.merge import merge_sql
from xeroml_pipelines_tests.factories import insert, trace
from xeroml_pipelines_tests.support import Exporter, make_provider


@pytest.fixture
def bq(request, monkeypatch):
    server = request.getfixturevalue("bigquery_server")
    resource = BigQueryWarehouse(project="xeroml-test", dataset="xeroml_test", api_endpoint=server.url)
    return server, resource


# Parquet is checked as SQL below: bqemulator cannot create a table from a Parquet file's own
# schema (it reads the file with DuckDB into a table that must exist), which BigQuery's load does.
@pytest.mark.parametrize("layout,file_format", [("dated", "jsonl"), ("hive", "jsonl")])
def test_bigquery_load_from_the_gcs_export(
    exporter: Exporter, bq, request, tmp_path, monkeypatch, layout: str, file_format: str
) -> None:
    server, resource = bq
    gcs = make_provider("gcs", request, tmp_path)
    for k, v in gcs.env.items():
        monkeypatch.setenv(k, v)
    insert(
        exporter.ch,
        "traces",
        [
            trace("a", "2025-01-15 10:00", name="a1"),
            trace("b", "2025-01-15 11:00", tags=["t1", "t2"], metadata={"k": "v"}),
            trace("c", "2025-01-15 12:00"),
            trace("a", "2025-01-16 09:00", timestamp="2025-01-15 10:00", name="a2"),
            trace("c", "2025-01-16 10:00", timestamp="2025-01-15 12:00", is_deleted=1),
        ],
    )
    with resource.get_client() as client:
        client.create_dataset("xeroml_e2e", exists_ok=True)
    warehouse = {"type": "bigquery", "project": "xeroml-test", "dataset": "xeroml_e2e", "api_endpoint": server.url}
    defs = build_definitions(
        exporter.config(tables=("traces",), destination=gcs.destination(), warehouse=warehouse, layout=layout, format=file_format)
    )
    assets = [defs.get_assets_def(AssetKey(["exp", "traces"])), defs.get_assets_def(AssetKey(["exp", "warehouse", "traces"]))]
    for day in ("2025-01-15", "2025-01-16", "2025-01-15"):
        assert materialize(assets, partition_key=day, resources=defs.resources).success
    with resource.get_client() as client:
        rows = list(client.query("SELECT id, name, tags FROM xeroml_e2e.xeroml_traces ORDER BY id").result())
        assert [(r.id, r.name) for r in rows] == [("a", "a2"), ("b", "chat")]
        assert list(rows[1].tags) == ["t1", "t2"]
        assert [r.id for r in client.query("SELECT id FROM xeroml_e2e.xeroml_traces__tombstones").result()] == ["c"]
        # no staging table is left behind
        assert sorted(t.table_id for t in client.list_tables("xeroml_e2e")) == ["xeroml_traces", "xeroml_traces__tombstones"]


def test_spec_bq_load_on_our_files(exporter: Exporter, bq, request, tmp_path, monkeypatch) -> None:
    """`bq load --source_format=NEWLINE_DELIMITED_JSON my-dataset.xeroml_traces gs://.../traces/D.jsonl`,
    as the API call it makes, into a table created from our schema."""
    server, resource = bq
    gcs = make_provider("gcs", request, tmp_path)
    for k, v in gcs.env.items():
        monkeypatch.setenv(k, v)
    insert(exporter.ch, "traces", [trace(f"t{i}", "2025-01-15 10:00", is_deleted=i % 5 == 0) for i in range(50)])
    exporter.run("2025-01-15", tables=("traces",), destination=gcs.destination())
    with resource.get_client() as client:
        client.create_dataset("my_dataset", exists_ok=True)
        schema = [bigquery.SchemaField(f["name"], f["type"], mode=f["mode"]) for f in schemas.bigquery_schema("traces")]
        client.create_table(bigquery.Table("xeroml-test.my_dataset.xeroml_traces", schema=schema), exists_ok=True)
        job = client.load_table_from_uri(
            f"gs://{gcs.bucket}/xeroml-export/traces/2025-01-15.jsonl",
            "xeroml-test.my_dataset.xeroml_traces",
            job_config=bigquery.LoadJobConfig(source_format="NEWLINE_DELIMITED_JSON"),
        )
        assert job.result().output_rows == 50
        (row,) = client.query("SELECT count(*) AS n, countif(is_deleted) AS d FROM my_dataset.xeroml_traces").result()
        assert (row.n, row.d) == (50, 10)


def test_bigquery_needs_a_gcs_export() -> None:
    from xeroml_pipelines.config import ConfigError, parse_config

    text = """
clickhouse: {url: 'chdb:///x'}
exports:
  - name: e
    project_id: p
    start_date: 2025-01-01
    destination: {provider: local}
    warehouse: {type: bigquery, project: my-project, dataset: xeroml}
"""
    with pytest.raises(ConfigError, match="must be provider: gcs"):
        parse_config(text)


def test_bigquery_parquet_load_job_and_projection() -> None:
    """What a Parquet load asks BigQuery for: the file's own schema (no explicit one), lists as
    arrays, costs exact; the MERGE reads the staged rows through a projection onto the table's types."""
    config = bigquery.LoadJobConfig(**load_job_config("parquet")).to_api_repr()["load"]
    assert config["sourceFormat"] == "PARQUET" and config["writeDisposition"] == "WRITE_TRUNCATE"
    assert config["decimalTargetTypes"] == ["NUMERIC", "BIGNUMERIC"]
    assert config["parquetOptions"] == {"enableListInference": True}
    assert "schema" not in config
    sql = parquet_projection("observations", "`p.d.staging`", frozenset({"input", "output"}))
    assert sql.startswith("(SELECT `id`, ") and sql.endswith(" FROM `p.d.staging`)")
    assert (
        "JSON_OBJECT(ARRAY(SELECT key FROM UNNEST(`metadata`.key_value)), ARRAY(SELECT value FROM UNNEST(`metadata`.key_value)))"
        " AS `metadata`"
    ) in sql
    assert "CAST(`total_cost` AS FLOAT64) AS `total_cost`" in sql and "`input`" not in sql
    merge = merge_sql("observations", "d.t", sql, quote="`", delete_alias=True).statements()
    assert all(sql in statement for statement in merge)
