"""One spec per exported table (issue 21): the CLI's choices, the configuration's validation, the
assets (description, lineage), the late-data sensor's change sources and every schema come from
the registry, and each table's line model is its spec's columns, in file order."""

from __future__ import annotations

import subprocess
import sys

import pytest
from dagster import AssetKey

from xeroml_pipelines import schemas
from xeroml_pipelines.clickhouse.changes import marks
from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.config import ConfigError, parse_config
from xeroml_pipelines.defs.location import build_definitions
from xeroml_pipelines.export.parquet import arrow_schema
from xeroml_pipelines.tables import DEFAULT_TABLES, TABLES, exported_table
from xeroml_pipelines_tests.support import Exporter, documentation


@pytest.mark.parametrize("name", list(TABLES))
def test_every_schema_is_the_specs_columns(name: str) -> None:
    spec = TABLES[name]
    assert list(spec.model.model_fields) == list(spec.column_names)
    assert list(schemas.json_schema(name)["properties"]) == list(spec.column_names)
    assert arrow_schema(name).names == list(spec.column_names)
    assert [f["name"] for f in schemas.bigquery_schema(name)] == list(spec.column_names)
    for dialect in ("snowflake", "redshift", "duckdb"):
        ddl = schemas.ddl(name, dialect)  # type: ignore[arg-type]
        assert all(f'"{c}"' in ddl for c in spec.column_names), dialect
    # what a tombstone keeps is what the model requires (with the delete flag and identity)
    required = set(schemas.json_schema(name)["required"])
    assert {"id", "project_id", "event_ts", "is_deleted"} <= required <= set(spec.tombstone_columns)
    assert set(spec.required_columns("incremental")) <= set(spec.column_names)
    assert set(spec.change_sources) <= {"traces", "observations", "scores"}


def test_cli_choices_are_the_registry() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "xeroml_pipelines.cli", "schemas", "--format", "duckdb", "--table", "spans"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and all(name in run.stderr for name in TABLES)
    run = subprocess.run(
        [sys.executable, "-m", "xeroml_pipelines.cli", "schemas", "--format", "duckdb", "--table", "enriched_observations"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert '"trace_name" VARCHAR' in run.stdout and '"latency_ms" BIGINT' in run.stdout


def test_configuration_names_the_registrys_tables() -> None:
    yaml = (
        "clickhouse: {url: 'chdb:///tmp/x', database: x}\nexports:\n  - name: e\n    project_id: p\n"
        "    start_date: 2025-01-01\n    destination: {provider: local, path: /tmp/x}\n    tables: [traces, spans]\n"
    )
    with pytest.raises(ConfigError) as e:
        parse_config(yaml, "t.yaml")
    assert "exports.0.tables.1" in str(e.value) and all(name in str(e.value) for name in TABLES)
    with pytest.raises(ValueError, match="unknown table 'spans'"):
        exported_table("spans")
    assert parse_config(yaml.replace("spans", "enriched_observations"), "t.yaml").exports[0].tables[-1] == "enriched_observations"


def test_assets_take_description_and_lineage_from_the_spec(exporter: Exporter) -> None:
    defs = build_definitions(exporter.config(tables=tuple(TABLES)))
    for name, spec in TABLES.items():
        asset = defs.get_assets_def(AssetKey(["exp", name]))
        assert (asset.descriptions_by_key[asset.key] or "").startswith(spec.description)
        # lineage from the ClickHouse tables its query reads, not from another export's files
        assert asset.asset_deps[asset.key] == {AssetKey(["clickhouse", s]) for s in spec.sources}, name
    graph = defs.resolve_asset_graph()
    sources = {key for key in graph.get_all_asset_keys() if not graph.get(key).is_materializable}
    assert sources == {AssetKey(["clickhouse", s]) for spec in TABLES.values() for s in spec.sources}


def test_the_sensor_marks_every_change_source(ch: ClickHouseResource) -> None:
    assert set(marks(ch, ["enriched_observations"])) == {"traces", "observations"}
    assert set(marks(ch, ["sessions"])) == {"traces", "observations"}
    assert set(marks(ch, ["scores"])) == {"scores"}
    assert DEFAULT_TABLES == ("traces", "observations", "scores", "sessions")


def test_readme_lists_every_table_as_registered() -> None:
    readme = documentation()
    rows = {
        cells[0].strip("` "): [c.strip() for c in cells[1:]]
        for line in readme.split("### Tables\n", 1)[1].split("###", 1)[0].splitlines()
        if line.startswith("| `") and (cells := line.strip("|").split("|"))
    }
    assert list(rows) == list(TABLES)
    for name, (_, read_from, rechecked, default) in rows.items():
        spec = TABLES[name]
        assert read_from == ", ".join(spec.sources) and rechecked == ", ".join(spec.change_sources), name
        assert default.startswith("yes") == spec.default, name
