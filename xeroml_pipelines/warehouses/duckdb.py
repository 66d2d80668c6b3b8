"""DuckDB, the embedded default warehouse: a local database file."""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb
from dagster import ConfigurableResource
from pydantic import Field, field_validator

from xeroml_pipelines import schemas
from xeroml_pipelines.identifiers import validate_identifier
from xeroml_pipelines.io_managers.base import ExportIOManager
from xeroml_pipelines.warehouses.base import LoadResult
from xeroml_pipelines.warehouses.merge import merge_sql


class DuckDBWarehouse(ConfigurableResource):
    path: str = Field(default="xeroml-warehouse.duckdb", description="Database file; relative paths are from the working directory")
    table_prefix: str = "xeroml_"

    @field_validator("table_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        return validate_identifier(v + "t", "table_prefix")[:-1]

    def target(self, table: str) -> str:
        return f"{self.table_prefix}{table}"

    def connect(self) -> duckdb.DuckDBPyConnection:
        Path(self.path).absolute().parent.mkdir(parents=True, exist_ok=True)
        return duckdb.connect(str(Path(self.path).absolute()))

    def ensure_table(self, con: duckdb.DuckDBPyConnection, table: str) -> None:
        con.execute(schemas.ddl(table, "duckdb", self.target(table)))
        con.execute(merge_sql(table, self.target(table), "staging").tombstones_ddl("VARCHAR", "TIMESTAMPTZ"))

    def load(self, table: str, object_key: str | None, project_id: str, source: ExportIOManager) -> LoadResult:
        target = self.target(table)
        with tempfile.TemporaryDirectory() as tmp, self.connect() as con:
            self.ensure_table(con, table)
            rows = 0
            if object_key is not None:
                local = source.local_copy(object_key, Path(tmp))
                columns = {name: schemas.column_type(annotation, "duckdb") for name, annotation, _ in schemas.columns(table)}
                con.execute("BEGIN TRANSACTION")
                try:
                    # The file's own schema is the contract: explicit column types, nothing inferred.
                    con.execute(
                        f"CREATE TEMP TABLE staging AS SELECT * FROM read_json(?, format = 'newline_delimited', columns = {columns!r})",
                        [str(local)],
                    )
                    rows = con.execute("SELECT count(*) FROM staging").fetchone()[0]
                    for statement in merge_sql(table, target, "staging").statements():
                        con.execute(statement)
                    con.execute("DROP TABLE staging")
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
            live = con.execute(f"SELECT count(*) FROM {target} WHERE project_id = ?", [project_id]).fetchone()[0]
        return LoadResult(rows_in_file=rows, live_rows=live, target=target)
