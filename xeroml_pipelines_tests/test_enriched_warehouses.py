"""`enriched_observations` in the four warehouses: loaded partition after partition, each holds
exactly the current live enriched observations, the trace attributes of the latest trace version
included (DuckDB, Snowflake on fakesnow, BigQuery on its emulator; Redshift's statements run on
DuckDB, as for every table)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import fakesnow
from dagster import AssetKey, materialize

from xeroml_pipelines import schemas
from xeroml_pipelines.defs.location import build_definitions
from xeroml_pipelines.warehouses import redshift
from xeroml_pipelines.warehouses.merge import merge_sql
from xeroml_pipelines_tests.factories import insert, observation, trace
from xeroml_pipelines_tests.support import Exporter, make_provider

TABLE = "enriched_observations"
D, D1 = "2025-01-15", "2025-01-16"
# (id, user_id, session_id, tags, total_cost): O1 carries the trace's later user id; O2 (deleted
# observation) and O3 (deleted trace) are gone; O4's trace is unknown
EXPECTED = [("O1", "u7", "S", ["a"], 0.25), ("O4", None, None, [], 1.0)]


def _seed_day(exporter: Exporter) -> None:
    insert(
        exporter.ch,
        "traces",
        [
            trace("T1", f"{D} 10:00", user_id=None, session_id="S", tags=["a"]),
            trace("T2", f"{D} 11:00"),
            trace("T2", f"{D} 13:00", timestamp=f"{D} 11:00", is_deleted=1),
        ],
    )
    insert(
        exporter.ch,
        "observations",
        [
            observation("O1", "T1", f"{D} 10:01", total_cost=0.25, usage_details={"input": 3}),
            observation("O2", "T1", f"{D} 10:02", total_cost=0.5),
            observation("O2", "T1", f"{D} 12:00", start_time=f"{D} 10:02", is_deleted=1),
            observation("O3", "T2", f"{D} 11:01", total_cost=9.0),
            observation("O4", "no-such-trace", f"{D} 14:00", total_cost=1.0),
        ],
    )


def _the_user_arrives(exporter: Exporter) -> None:
    insert(exporter.ch, "traces", [trace("T1", f"{D1} 09:00", timestamp=f"{D} 10:00", user_id="u7", session_id="S", tags=["a"])])


def _export_and_load(exporter: Exporter, destination: dict, warehouse: dict) -> None:
    """Day D exported and loaded, then the trace's update and day D1, as the schedule would."""
    defs = build_definitions(exporter.config(tables=(TABLE,), destination=destination, warehouse=warehouse))
    assets = [defs.get_assets_def(AssetKey(["exp", TABLE])), defs.get_assets_def(AssetKey(["exp", "warehouse", TABLE]))]
    _seed_day(exporter)
    assert materialize(assets, partition_key=D, resources=defs.resources).success
    _the_user_arrives(exporter)
    assert materialize(assets, partition_key=D1, resources=defs.resources).success


def _rows(rows) -> list[tuple]:
    out = []
    for id_, user, session, tags, cost in rows:
        tags = json.loads(tags) if isinstance(tags, str) else list(tags or [])
        out.append((id_, user, session, tags, float(cost)))
    return out


def test_duckdb(exporter: Exporter, tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    _export_and_load(exporter, {"provider": "local", "path": str(tmp_path / "out")}, {"type": "duckdb", "path": str(path)})
    with duckdb.connect(str(path)) as con:
        rows = con.execute(f"SELECT id, user_id, session_id, tags, total_cost FROM xeroml_{TABLE} ORDER BY id").fetchall()
    assert _rows(rows) == EXPECTED


def test_snowflake(exporter: Exporter, tmp_path: Path) -> None:
    from xeroml_pipelines_tests.test_warehouse_snowflake_redshift import SNOWFLAKE, _snowflake

    root = tmp_path / "bucket"
    warehouse = SNOWFLAKE
    with fakesnow.patch():
        con = _snowflake(root)
        _export_and_load(exporter, {"provider": "local", "path": str(root), "prefix": "xeroml-export"}, warehouse)
        cur = con.cursor().execute(f'SELECT "id", "user_id", "session_id", "tags", "total_cost" FROM xeroml_{TABLE} ORDER BY 1')
        assert _rows(cur.fetchall()) == EXPECTED


def test_bigquery(exporter: Exporter, request, tmp_path, monkeypatch) -> None:
    from xeroml_pipelines.warehouses.bigquery import BigQueryWarehouse

    server = request.getfixturevalue("bigquery_server")
    gcs = make_provider("gcs", request, tmp_path)
    for k, v in gcs.env.items():
        monkeypatch.setenv(k, v)
    warehouse = {"type": "bigquery", "project": "xeroml-test", "dataset": "xeroml_enriched", "api_endpoint": server.url}
    resource = BigQueryWarehouse(project="xeroml-test", dataset="xeroml_test", api_endpoint=server.url)
    with resource.get_client() as client:
        client.create_dataset("xeroml_enriched", exists_ok=True)
    _export_and_load(exporter, gcs.destination(), warehouse)
    with resource.get_client() as client:
        result = client.query(f"SELECT id, user_id, session_id, tags, total_cost FROM xeroml_enriched.xeroml_{TABLE} ORDER BY id")
        assert _rows([tuple(r.values()) for r in result.result()]) == EXPECTED


def test_redshift_statements_on_duckdb(exporter: Exporter, tmp_path: Path) -> None:
    """Redshift's CREATE TABLE and its statements after the COPY, run on DuckDB over our files."""
    out = tmp_path / "out"
    _seed_day(exporter)
    exporter.out = out
    exporter.run(D, tables=(TABLE,))
    _the_user_arrives(exporter)
    exporter.run(D1, tables=(TABLE,))
    ddl = schemas.ddl(TABLE, "redshift", "xeroml_enriched_observations")
    assert '"trace_metadata" SUPER' in ddl and '"tags" SUPER' in ddl and '"user_id" VARCHAR(65535)' in ddl
    con = duckdb.connect()
    con.execute(schemas.ddl(TABLE, "duckdb", "xeroml_enriched_observations"))
    con.execute(merge_sql(TABLE, "xeroml_enriched_observations", "xeroml_staging").tombstones_ddl("VARCHAR", "TIMESTAMPTZ"))
    columns = {n: schemas.column_type(a, "duckdb") for n, a, _ in schemas.columns(TABLE)}
    role = "arn:aws:iam::123456789012:role/r"
    for day in (D, D1):
        statements = redshift.load_statements(TABLE, "xeroml_enriched_observations", f"s3://b/{day}.jsonl", role, None)
        assert statements[0] == "CREATE TEMP TABLE xeroml_staging (LIKE xeroml_enriched_observations)"
        path = str(exporter.path(TABLE, day))
        con.execute(
            f"CREATE TEMP TABLE xeroml_staging AS SELECT * FROM read_json(?, format='newline_delimited', columns={columns!r})",
            [path],
        )
        for statement in statements[2:]:
            con.execute(statement)
    rows = con.execute(
        "SELECT id, user_id, session_id, tags, total_cost FROM xeroml_enriched_observations ORDER BY id"
    ).fetchall()
    assert _rows(rows) == EXPECTED
