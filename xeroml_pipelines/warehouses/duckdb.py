"""DuckDB, the embedded default warehouse: a local database file."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from xeroml_pipelines import schemas
from xeroml_pipelines.destinations.base import Destination
from xeroml_pipelines.export.formats import FileFormat
from xeroml_pipelines.schemas import NO_EXCLUSIONS
from xeroml_pipelines.warehouses.base import LoadResult, Warehouse
from xeroml_pipelines.warehouses.merge import merge_sql

if TYPE_CHECKING:
    import duckdb


def _count(con: duckdb.DuckDBPyConnection, sql: str, params: list[str] | None = None) -> int:
    row = con.execute(sql, params).fetchone()
    assert row is not None, "a count returns one row"
    return int(row[0])


class DuckDBWarehouse(Warehouse):
    type: Literal["duckdb"] = "duckdb"
    path: str = Field(
        default="xeroml-warehouse.duckdb", description="Database file; relative paths are from the working directory"
    )

    def target(self, table: str) -> str:
        return f"{self.table_prefix}{table}"

    def connect(self) -> duckdb.DuckDBPyConnection:
        import duckdb

        Path(self.path).absolute().parent.mkdir(parents=True, exist_ok=True)
        return duckdb.connect(str(Path(self.path).absolute()))

    def ensure_table(self, con: duckdb.DuckDBPyConnection, table: str, exclude: frozenset[str] = NO_EXCLUSIONS) -> None:
        """The table with the selected columns; a column the selection takes back in later is added."""
        target = self.target(table)
        con.execute(schemas.ddl(table, "duckdb", target, exclude))
        listed = con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ?", [target]).fetchall()
        existing = {name for (name,) in listed}
        for statement in schemas.add_columns(table, "duckdb", target, existing, exclude):
            con.execute(statement)
        for name in sorted(exclude & existing):  # left out now: new rows have no value for it
            con.execute(f'ALTER TABLE {target} ALTER COLUMN "{name}" DROP NOT NULL')
        con.execute(merge_sql(table, self.target(table), "staging").tombstones_ddl("VARCHAR", "TIMESTAMPTZ"))

    def load(
        self,
        table: str,
        object_key: str | None,
        project_id: str,
        source: Destination,
        exclude: frozenset[str] = NO_EXCLUSIONS,
        file_format: FileFormat = "jsonl",
    ) -> LoadResult:
        target = self.target(table)
        with tempfile.TemporaryDirectory() as tmp, self.connect() as con:
            self.ensure_table(con, table, exclude)
            rows = 0
            if object_key is not None:
                local = source.local_copy(object_key, Path(tmp))
                columns = {
                    name: schemas.column_type(annotation, "duckdb") for name, annotation, _ in schemas.columns(table, exclude)
                }
                con.execute("BEGIN TRANSACTION")
                try:
                    # The file's own schema is the contract: explicit column types, nothing inferred,
                    # and no `date` column taken from a hive-layout path (`date=.../data.jsonl`).
                    if file_format == "parquet":  # typed by the file: the table's types by cast
                        typed = ", ".join(f'CAST("{name}" AS {type_}) AS "{name}"' for name, type_ in columns.items())
                        read = f"(SELECT {typed} FROM read_parquet(?, hive_partitioning = false))"
                    else:
                        options = f"format = 'newline_delimited', columns = {columns!r}, hive_partitioning = false"
                        read = f"read_json(?, {options})"
                    con.execute(f"CREATE TEMP TABLE staging AS SELECT * FROM {read}", [str(local)])
                    rows = _count(con, "SELECT count(*) FROM staging")
                    for statement in merge_sql(table, target, "staging", exclude=exclude).statements():
                        con.execute(statement)
                    con.execute("DROP TABLE staging")
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
            live = _count(con, f"SELECT count(*) FROM {target} WHERE project_id = ?", [project_id])
        return LoadResult(rows_in_file=rows, live_rows=live, target=target)
