"""Latency and time to first token on observations (issue 21): in JSON lines and Parquet (typed),
null without the later time and for tombstones, left out by a field selection; and every
warehouse adds the two columns to an observations table loaded before they existed (DuckDB,
Snowflake on fakesnow, BigQuery on its emulator, Redshift as SQL)."""

from __future__ import annotations

from pathlib import Path

import fakesnow
import pyarrow.parquet as pq
from dagster import AssetKey, materialize

from xeroml_pipelines import schemas
from xeroml_pipelines.defs.location import build_definitions
from xeroml_pipelines_tests.factories import insert, observation
from xeroml_pipelines_tests.support import Exporter, make_provider

METRICS = frozenset({"latency_ms", "time_to_first_token_ms"})
DAY = "2025-01-15"


def _seed(exporter: Exporter) -> None:
    insert(
        exporter.ch,
        "observations",
        [
            observation(
                "done",
                "t1",
                "2025-01-15 10:00:05",
                start_time="2025-01-15 10:00:00",
                end_time="2025-01-15 10:00:02.500",
                completion_start_time="2025-01-15 10:00:00.750",
            ),
            observation("running", "t1", "2025-01-15 11:00:00"),  # no end yet, no first token
            observation("gone", "t1", "2025-01-15 12:00:00", end_time="2025-01-15 12:00:01"),
            observation(
                "gone",
                "t1",
                "2025-01-15 12:30:00",
                start_time="2025-01-15 12:00:00",
                end_time="2025-01-15 12:00:01",
                is_deleted=1,
            ),
        ],
    )


EXPECTED = {"done": (2500, 750), "running": (None, None), "gone": (None, None)}  # a tombstone keeps no metric


def test_metrics_in_json_lines_and_parquet(exporter: Exporter) -> None:
    _seed(exporter)
    exporter.run(DAY, tables=("observations",))
    lines = {line["id"]: line for line in exporter.lines("observations", DAY)}
    assert {k: (v["latency_ms"], v["time_to_first_token_ms"]) for k, v in lines.items()} == EXPECTED
    assert list(lines["done"])[-3:] == ["is_deleted", "latency_ms", "time_to_first_token_ms"]  # today's line, then the two

    exporter.run(DAY, tables=("observations",), format="parquet")
    table = pq.read_table(exporter.path("observations", DAY, ".parquet"))
    assert str(table.schema.field("latency_ms").type) == "int64"
    got = {r["id"]: (r["latency_ms"], r["time_to_first_token_ms"]) for r in table.to_pylist()}
    assert got == EXPECTED

    exporter.run(DAY, tables=("observations",), exclude={"observations": ["latency_ms", "time_to_first_token_ms"]})
    assert not METRICS & set(exporter.lines("observations", DAY)[0])


def _old_table(dialect: str, target: str) -> str:
    """An observations table as loaded before the metrics existed."""
    return schemas.ddl("observations", dialect, target, METRICS)  # type: ignore[arg-type]


def _export_and_load(exporter: Exporter, destination: dict, warehouse: dict) -> None:
    defs = build_definitions(exporter.config(tables=("observations",), destination=destination, warehouse=warehouse))
    assets = [
        defs.get_assets_def(AssetKey(["exp", "observations"])),
        defs.get_assets_def(AssetKey(["exp", "warehouse", "observations"])),
    ]
    assert materialize(assets, partition_key=DAY, resources=defs.resources).success


def test_duckdb_adds_the_metrics_to_an_older_table(exporter: Exporter, tmp_path: Path) -> None:
    import duckdb

    _seed(exporter)
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(_old_table("duckdb", "xeroml_observations"))
    _export_and_load(exporter, {"provider": "local", "path": str(tmp_path / "out")}, {"type": "duckdb", "path": str(path)})
    with duckdb.connect(str(path)) as con:
        rows = con.execute("SELECT id, latency_ms, time_to_first_token_ms FROM xeroml_observations ORDER BY id").fetchall()
    assert rows == [("done", 2500, 750), ("running", None, None)]


def test_snowflake_adds_the_metrics_to_an_older_table(exporter: Exporter, tmp_path: Path) -> None:
    from xeroml_pipelines_tests.test_warehouse_snowflake_redshift import SNOWFLAKE, _snowflake

    _seed(exporter)
    root = tmp_path / "bucket"
    warehouse = SNOWFLAKE
    with fakesnow.patch():
        con = _snowflake(root)
        con.cursor().execute(_old_table("snowflake", "xeroml_observations"))
        _export_and_load(exporter, {"provider": "local", "path": str(root), "prefix": "xeroml-export"}, warehouse)
        rows = con.cursor().execute('SELECT "id", "latency_ms", "time_to_first_token_ms" FROM xeroml_observations ORDER BY 1')
        assert [tuple(r) for r in rows.fetchall()] == [("done", 2500, 750), ("running", None, None)]


def test_bigquery_adds_the_metrics_to_an_older_table(exporter: Exporter, request, tmp_path, monkeypatch) -> None:
    from xeroml_pipelines.warehouses.bigquery import BigQueryWarehouse

    server = request.getfixturevalue("bigquery_server")
    resource = BigQueryWarehouse(project="xeroml-test", dataset="xeroml_test", api_endpoint=server.url)
    gcs = make_provider("gcs", request, tmp_path)
    for k, v in gcs.env.items():
        monkeypatch.setenv(k, v)
    _seed(exporter)
    with resource.get_client() as client:
        client.create_dataset("xeroml_metrics", exists_ok=True)
        client.query(_old_table("bigquery", "xeroml_metrics.xeroml_observations")).result()
    warehouse = {"type": "bigquery", "project": "xeroml-test", "dataset": "xeroml_metrics", "api_endpoint": server.url}
    _export_and_load(exporter, gcs.destination(), warehouse)
    with resource.get_client() as client:
        rows = client.query(
            "SELECT id, latency_ms, time_to_first_token_ms FROM xeroml_metrics.xeroml_observations ORDER BY id"
        ).result()
        assert [tuple(r.values()) for r in rows] == [("done", 2500, 750), ("running", None, None)]


def test_redshift_adds_the_metrics_to_an_older_table_as_sql() -> None:
    old = [name for name, _, _ in schemas.columns("observations", METRICS)]
    assert schemas.add_columns("observations", "redshift", "analytics.xeroml_observations", [n.upper() for n in old]) == [
        'ALTER TABLE analytics.xeroml_observations ADD COLUMN "latency_ms" BIGINT',
        'ALTER TABLE analytics.xeroml_observations ADD COLUMN "time_to_first_token_ms" BIGINT',
    ]
    everything = [name for name, _, _ in schemas.columns("observations")]
    assert schemas.add_columns("observations", "redshift", "analytics.xeroml_observations", everything) == []
