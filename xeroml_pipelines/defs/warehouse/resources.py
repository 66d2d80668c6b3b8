"""The warehouse resource of an export, from its configuration (secrets as EnvVars)."""

from __future__ import annotations

from dagster import ConfigurableResource, EnvVar

from xeroml_pipelines.config import BigQueryWarehouseConfig, DuckDBWarehouseConfig, ExportConfig, SnowflakeWarehouseConfig
from xeroml_pipelines.warehouses.bigquery import BigQueryClientResource, BigQueryWarehouse
from xeroml_pipelines.warehouses.duckdb import DuckDBWarehouse
from xeroml_pipelines.warehouses.redshift import RedshiftWarehouse
from xeroml_pipelines.warehouses.snowflake import SnowflakeWarehouse


def warehouse_resource_key(export: ExportConfig) -> str:
    return f"{export.name}_warehouse"


def warehouse_resource(export: ExportConfig) -> ConfigurableResource:
    w = export.warehouse
    assert w is not None
    if isinstance(w, DuckDBWarehouseConfig):
        return DuckDBWarehouse(path=w.path, table_prefix=w.table_prefix)
    if isinstance(w, BigQueryWarehouseConfig):
        bq = BigQueryClientResource(
            project=w.project, location=w.location, api_endpoint=w.api_endpoint,
            gcp_credentials=EnvVar(w.credentials_env) if w.credentials_env else None,
        )
        return BigQueryWarehouse(bigquery=bq, dataset=w.dataset, table_prefix=w.table_prefix)
    password = EnvVar(w.password_env) if w.password_env else None
    if isinstance(w, SnowflakeWarehouseConfig):
        return SnowflakeWarehouse(
            account=w.account, user=w.user, password=password, role=w.role, warehouse=w.warehouse,
            database=w.database, db_schema=w.schema_name, stage=w.stage, table_prefix=w.table_prefix,
        )
    return RedshiftWarehouse(
        host=w.host, port=w.port, database=w.database, user=w.user, password=password, db_schema=w.schema_name,
        iam_role_arn=w.iam_role_arn, region=w.region, table_prefix=w.table_prefix,
    )
