"""Snowflake: COPY INTO a staging table from a stage over the export's bucket, then MERGE. JSON
lines go through a VARIANT column and are typed by a SELECT; Parquet files load straight into
typed columns (MATCH_BY_COLUMN_NAME).

The stage (created by the user, e.g. `CREATE STAGE xeroml_stage URL = 's3://bucket/xeroml-export/'
STORAGE_INTEGRATION = ...`) is rooted at the export's prefix, so a file's stage path is its key
below that prefix.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from xeroml_pipelines import schemas
from xeroml_pipelines.credentials import from_env
from xeroml_pipelines.destinations.base import Destination
from xeroml_pipelines.export.formats import FileFormat
from xeroml_pipelines.identifiers import EnvVarName
from xeroml_pipelines.schemas import NO_EXCLUSIONS
from xeroml_pipelines.warehouses.base import LoadResult, Warehouse
from xeroml_pipelines.warehouses.merge import merge_sql

RAW, STAGING = "xeroml_raw", "xeroml_staging"


def stage_path(object_key: str, prefix: str) -> tuple[str, str]:
    """(folder below the stage, file name) of an object whose key starts with the export prefix."""
    relative = object_key[len(prefix) + 1 :] if prefix else object_key
    folder, _, name = relative.rpartition("/")
    return folder, name


def staging_statements(
    table: str, stage: str, folder: str, name: str, exclude: frozenset[str] = NO_EXCLUSIONS, file_format: FileFormat = "jsonl"
) -> list[str]:
    """Temporary tables only (DDL commits implicitly in Snowflake, so these stay outside the
    transaction of the merge)."""
    if file_format == "parquet":
        columns = ", ".join(f'"{n}" {schemas.column_type(a, "snowflake")}' for n, a, _ in schemas.columns(table, exclude))
        return [
            f"CREATE OR REPLACE TEMPORARY TABLE {STAGING} ({columns})",
            f"COPY INTO {STAGING} FROM @{stage}/{folder}/ FILES = ('{name}') "
            "FILE_FORMAT = (TYPE = PARQUET) MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE",
        ]
    typed = ", ".join(f'v:"{n}"::{schemas.column_type(a, "snowflake")} AS "{n}"' for n, a, _ in schemas.columns(table, exclude))
    return [
        f"CREATE OR REPLACE TEMPORARY TABLE {RAW} (v VARIANT)",
        # FILES names the one object: a prefix match would also take `2025-01-15.jsonl.gz`
        f"COPY INTO {RAW} FROM @{stage}/{folder}/ FILES = ('{name}') FILE_FORMAT = (TYPE = 'JSON')",
        f"CREATE OR REPLACE TEMPORARY TABLE {STAGING} AS SELECT {typed} FROM {RAW}",
    ]


class SnowflakeWarehouse(Warehouse):
    """COPY INTO from `stage`, a stage the user created over the export's bucket and prefix."""

    type: Literal["snowflake"] = "snowflake"
    account: str
    user: str
    password_env: EnvVarName | None = Field(default=None, description="Name of the env var holding the password")
    role: str | None = None
    warehouse: str | None = None
    database: str
    schema_name: str = "PUBLIC"
    stage: str = Field(
        pattern=r"^[A-Za-z_][\w$.]*$", description="Stage over the export's bucket and prefix, e.g. XEROML.EXPORTS.XEROML_STAGE"
    )

    def connect(self) -> Any:
        import snowflake.connector

        return snowflake.connector.connect(
            account=self.account,
            user=self.user,
            password=from_env(self.password_env, "warehouse.password_env"),
            role=self.role,
            warehouse=self.warehouse,
            database=self.database,
            schema=self.schema_name,
        )

    def load(
        self,
        table: str,
        object_key: str | None,
        project_id: str,
        source: Destination,
        exclude: frozenset[str] = NO_EXCLUSIONS,
        file_format: FileFormat = "jsonl",
    ) -> LoadResult:
        target = f"{self.table_prefix}{table}"
        merge = merge_sql(table, target, STAGING, exclude=exclude)
        con = self.connect()
        try:
            cur = con.cursor()
            cur.execute(schemas.ddl(table, "snowflake", target, exclude))
            cur.execute(f"SELECT * FROM {target} LIMIT 0")  # the loaded table's columns
            for statement in schemas.add_columns(table, "snowflake", target, [d[0] for d in cur.description], exclude):
                cur.execute(statement)
            cur.execute(merge.tombstones_ddl("VARCHAR", "TIMESTAMP_TZ"))
            rows = 0
            if object_key is not None:
                folder, name = stage_path(object_key, source.prefix)
                for statement in staging_statements(table, self.stage, folder, name, exclude, file_format):
                    cur.execute(statement)
                rows = cur.execute(f"SELECT count(*) FROM {STAGING}").fetchone()[0]
                # Autocommit, statement by statement: each one only ever moves the table towards
                # the file's state, so a load cut short is completed by running it again.
                for statement in merge.statements():
                    cur.execute(statement)
            live = cur.execute(f"SELECT count(*) FROM {target} WHERE project_id = %s", (project_id,)).fetchone()[0]
            return LoadResult(rows_in_file=rows, live_rows=live, target=target)
        finally:
            con.close()
