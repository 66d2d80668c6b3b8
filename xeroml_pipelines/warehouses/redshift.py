"""Redshift: COPY ... FORMAT AS JSON (or PARQUET) from the S3 export with an IAM role, then MERGE.

Large prompts and completions go to SUPER columns (VARCHAR stops at 64 KB). No Redshift runs
here: the statements are checked as SQL, and the MERGE they share with DuckDB runs there.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from xeroml_pipelines import schemas
from xeroml_pipelines.credentials import from_env
from xeroml_pipelines.destinations.base import Destination
from xeroml_pipelines.export.formats import FileFormat
from xeroml_pipelines.identifiers import ROLE_ARN, EnvVarName
from xeroml_pipelines.schemas import NO_EXCLUSIONS
from xeroml_pipelines.warehouses.base import LoadResult, Warehouse
from xeroml_pipelines.warehouses.merge import merge_sql

STAGING = "xeroml_staging"
_COMPRESSION = {".gz": " GZIP", ".zst": " ZSTD"}


def parquet_staging_ddl(table: str, exclude: frozenset[str] = NO_EXCLUSIONS) -> str:
    """COPY from Parquet matches columns by position and takes no type conversions: the staging
    table has the file's columns in its order, with its exact costs (DECIMAL(18, 12))."""
    columns = []
    for name, annotation, _ in schemas.columns(table, exclude):
        exact = "decimal(18,12)" in schemas.unwrap(annotation)[2]
        columns.append(f'"{name}" {"DECIMAL(18, 12)" if exact else schemas.column_type(annotation, "redshift")}')
    return f"CREATE TEMP TABLE {STAGING} ({', '.join(columns)})"


def load_statements(
    table: str,
    target: str,
    s3_uri: str,
    iam_role_arn: str,
    region: str | None,
    exclude: frozenset[str] = NO_EXCLUSIONS,
    file_format: FileFormat = "jsonl",
) -> list[str]:
    region_clause = f" REGION '{region}'" if region else ""
    if file_format == "parquet":
        staging = [
            parquet_staging_ddl(table, exclude),
            f"COPY {STAGING} FROM '{s3_uri}' IAM_ROLE '{iam_role_arn}' FORMAT AS PARQUET{region_clause}",
        ]
    else:
        compression = next((option for ext, option in _COMPRESSION.items() if s3_uri.endswith(ext)), "")
        staging = [
            f"CREATE TEMP TABLE {STAGING} (LIKE {target})",
            f"COPY {STAGING} FROM '{s3_uri}' IAM_ROLE '{iam_role_arn}' "
            f"FORMAT AS JSON 'auto' TIMEFORMAT 'auto'{compression}{region_clause}",
        ]
    return [
        *staging,
        *merge_sql(table, target, STAGING, exclude=exclude).statements(),
        f"DROP TABLE {STAGING}",
    ]


class RedshiftWarehouse(Warehouse):
    """COPY from the S3 export with `iam_role_arn`; the export's destination must be S3."""

    type: Literal["redshift"] = "redshift"
    host: str
    port: int = 5439
    database: str
    user: str
    password_env: EnvVarName | None = Field(default=None, description="Name of the env var holding the password")
    schema_name: str = "public"
    iam_role_arn: str = Field(
        pattern=ROLE_ARN, description="Role Redshift assumes to read the export bucket (s3:GetObject, s3:ListBucket)"
    )
    region: str | None = None

    def connect(self) -> Any:
        password = from_env(self.password_env, "warehouse.password_env")
        import redshift_connector  # optional: pip install redshift_connector

        return redshift_connector.connect(
            host=self.host, port=self.port, database=self.database, user=self.user, password=password
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
        target = f"{self.schema_name}.{self.table_prefix}{table}"
        merge = merge_sql(table, target, STAGING, exclude=exclude)
        con = self.connect()
        try:
            cur = con.cursor()
            cur.execute(schemas.ddl(table, "redshift", target, exclude))
            cur.execute(f"SELECT * FROM {target} LIMIT 0")  # the loaded table's columns
            for statement in schemas.add_columns(table, "redshift", target, [d[0] for d in cur.description], exclude):
                cur.execute(statement)
            cur.execute(merge.tombstones_ddl("VARCHAR(512)", "TIMESTAMPTZ"))
            rows = 0
            if object_key is not None:
                uri = source.uri(object_key)
                for statement in load_statements(table, target, uri, self.iam_role_arn, self.region, exclude, file_format):
                    cur.execute(statement)
                    if statement.startswith("COPY"):
                        cur.execute("SELECT pg_last_copy_count()")
                        rows = cur.fetchone()[0]
            con.commit()
            cur.execute(f"SELECT count(*) FROM {target} WHERE project_id = %s", (project_id,))
            return LoadResult(rows_in_file=rows, live_rows=cur.fetchone()[0], target=target)
        except BaseException:
            con.rollback()
            raise
        finally:
            con.close()
