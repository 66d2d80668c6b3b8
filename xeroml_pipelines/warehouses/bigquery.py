"""BigQuery: `load_table_from_uri` of the GCS export into a staging table, then MERGE, through
dagster-gcp's BigQueryResource (or an emulator's endpoint). JSON lines load with an explicit schema; Parquet files bring
their own (lists as ARRAY, DECIMAL(18, 12) as BIGNUMERIC), and the MERGE reads them through a
projection onto the table's types."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from xeroml_pipelines import schemas
from xeroml_pipelines.credentials import from_env
from xeroml_pipelines.destinations.base import Destination
from xeroml_pipelines.export.formats import FileFormat
from xeroml_pipelines.identifiers import EnvVarName
from xeroml_pipelines.schemas import NO_EXCLUSIONS
from xeroml_pipelines.warehouses.base import LoadResult, Warehouse
from xeroml_pipelines.warehouses.merge import merge_sql

if TYPE_CHECKING:
    from google.cloud import bigquery


def load_job_config(file_format: FileFormat = "jsonl") -> dict[str, Any]:
    if file_format == "parquet":
        from google.cloud import bigquery

        return {
            "source_format": "PARQUET",
            "write_disposition": "WRITE_TRUNCATE",
            # NUMERIC holds 9 decimals, the costs have 12: BIGNUMERIC keeps them exact
            "decimal_target_types": ["NUMERIC", "BIGNUMERIC"],
            "parquet_options": bigquery.ParquetOptions.from_api_repr({"enableListInference": True}),
        }
    return {"source_format": "NEWLINE_DELIMITED_JSON", "write_disposition": "WRITE_TRUNCATE"}


def parquet_projection(table: str, staging: str, exclude: frozenset[str] = NO_EXCLUSIONS) -> str:
    """The staged Parquet rows in the table's types: a MAP arrives as repeated key/value records
    (made a JSON object again), a cost as BIGNUMERIC (made FLOAT64)."""
    out = []
    for name, annotation, _ in schemas.columns(table, exclude):
        type_ = schemas.column_type(annotation, "bigquery")
        if type_ == "JSON":
            pairs = f"UNNEST(`{name}`.key_value)"
            out.append(f"JSON_OBJECT(ARRAY(SELECT key FROM {pairs}), ARRAY(SELECT value FROM {pairs})) AS `{name}`")
        elif type_ == "FLOAT64":
            out.append(f"CAST(`{name}` AS FLOAT64) AS `{name}`")
        else:
            out.append(f"`{name}`")
    return f"(SELECT {', '.join(out)} FROM {staging})"


class BigQueryWarehouse(Warehouse):
    """load_table_from_uri from the GCS export; the export's destination must be GCS."""

    type: Literal["bigquery"] = "bigquery"
    project: str
    dataset: str = Field(pattern=r"^[A-Za-z0-9_]+$", max_length=1024)
    location: str | None = None
    credentials_env: EnvVarName | None = Field(default=None, description="Env var holding a base64 service-account key; else ADC")
    api_endpoint: str | None = Field(default=None, description="Only for an emulator: http://127.0.0.1:9050")

    @contextmanager
    def get_client(self) -> Iterator[bigquery.Client]:
        from google.cloud import bigquery

        if self.api_endpoint:
            from google.auth.credentials import AnonymousCredentials

            yield bigquery.Client(
                project=self.project,
                location=self.location,
                credentials=AnonymousCredentials(),
                client_options={"api_endpoint": self.api_endpoint},
            )
            return
        from dagster_gcp import BigQueryResource

        key = from_env(self.credentials_env, "warehouse.credentials_env")
        with BigQueryResource(project=self.project, location=self.location, gcp_credentials=key).get_client() as client:
            yield client

    def load(
        self,
        table: str,
        object_key: str | None,
        project_id: str,
        source: Destination,
        exclude: frozenset[str] = NO_EXCLUSIONS,
        file_format: FileFormat = "jsonl",
    ) -> LoadResult:
        target = f"{self.dataset}.{self.table_prefix}{table}"  # validated identifiers: no quoting needed
        from google.cloud import bigquery

        with self.get_client() as client:
            client.query(schemas.ddl(table, "bigquery", target, exclude)).result()
            existing = [field.name for field in client.get_table(target).schema]
            for statement in schemas.add_columns(table, "bigquery", target, existing, exclude):
                client.query(statement).result()
            merge = merge_sql(table, target, "staging", quote="`")
            client.query(merge.tombstones_ddl("STRING", "TIMESTAMP")).result()
            rows = 0
            if object_key is not None:
                staging_id = f"{client.project}.{self.dataset}.{self.table_prefix}{table}__staging_{uuid.uuid4().hex[:8]}"
                config = bigquery.LoadJobConfig(**load_job_config(file_format))
                if file_format == "jsonl":
                    fields = schemas.bigquery_schema(table, exclude)
                    config.schema = [bigquery.SchemaField(f["name"], f["type"], mode=f["mode"]) for f in fields]
                job = client.load_table_from_uri(source.uri(object_key), staging_id, job_config=config)
                job.result()
                rows = job.output_rows or 0
                staging = f"`{staging_id}`"
                if file_format == "parquet":
                    staging = parquet_projection(table, staging, exclude)
                try:
                    # each statement only moves the table towards the file: a cut-short load is completed by a re-run
                    for statement in merge_sql(
                        table, target, staging, quote="`", delete_alias=True, exclude=exclude
                    ).statements():
                        client.query(statement).result()
                finally:
                    client.delete_table(staging_id, not_found_ok=True)
            live = list(
                client.query(
                    f"SELECT count(*) AS n FROM {target} WHERE project_id = @p",
                    job_config=bigquery.QueryJobConfig(
                        query_parameters=[bigquery.ScalarQueryParameter("p", "STRING", project_id)]
                    ),
                ).result()
            )[0].n
        return LoadResult(rows_in_file=rows, live_rows=live, target=target)
