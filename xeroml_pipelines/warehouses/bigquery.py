"""BigQuery: `load_table_from_uri` of the GCS export (NEWLINE_DELIMITED_JSON, explicit schema)
into a staging table, then MERGE, through dagster-gcp's BigQueryResource."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from dagster_gcp import BigQueryResource
from google.cloud import bigquery
from pydantic import Field

from xeroml_pipelines import schemas
from xeroml_pipelines.destinations.base import Destination
from xeroml_pipelines.schemas import NO_EXCLUSIONS
from xeroml_pipelines.warehouses.base import LoadResult, Warehouse
from xeroml_pipelines.warehouses.merge import merge_sql


class BigQueryClientResource(BigQueryResource):
    """dagster-gcp's resource plus an API endpoint, for BigQuery-compatible services and emulators."""

    api_endpoint: str | None = Field(default=None, description="Only for an emulator: http://127.0.0.1:9050")

    @contextmanager
    def get_client(self) -> Iterator[bigquery.Client]:
        if not self.api_endpoint:
            with super().get_client() as client:
                yield client
            return
        from google.auth.credentials import AnonymousCredentials

        yield bigquery.Client(
            project=self.project,
            location=self.location,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.api_endpoint},
        )


def load_job_config() -> dict:
    return {"source_format": "NEWLINE_DELIMITED_JSON", "write_disposition": "WRITE_TRUNCATE"}


class BigQueryWarehouse(Warehouse):
    bigquery: BigQueryClientResource
    dataset: str
    table_prefix: str = "xeroml_"

    def load(
        self, table: str, object_key: str | None, project_id: str, source: Destination, exclude: frozenset[str] = NO_EXCLUSIONS
    ) -> LoadResult:
        target = f"{self.dataset}.{self.table_prefix}{table}"  # validated identifiers: no quoting needed
        with self.bigquery.get_client() as client:
            client.query(schemas.ddl(table, "bigquery", target, exclude)).result()
            merge = merge_sql(table, target, "staging", quote="`")
            client.query(merge.tombstones_ddl("STRING", "TIMESTAMP")).result()
            rows = 0
            if object_key is not None:
                staging_id = f"{client.project}.{self.dataset}.{self.table_prefix}{table}__staging_{uuid.uuid4().hex[:8]}"
                schema = [
                    bigquery.SchemaField(f["name"], f["type"], mode=f["mode"]) for f in schemas.bigquery_schema(table, exclude)
                ]
                job = client.load_table_from_uri(
                    source.uri(object_key), staging_id, job_config=bigquery.LoadJobConfig(schema=schema, **load_job_config())
                )
                job.result()
                rows = job.output_rows or 0
                staging = f"`{staging_id}`"
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
