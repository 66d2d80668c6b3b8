"""Where an export's partitions are loaded, as declared in YAML; each model builds its resource."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from xeroml_pipelines.config.base import Strict
from xeroml_pipelines.config.destinations import env
from xeroml_pipelines.identifiers import EnvVarName, TablePrefix

if TYPE_CHECKING:  # a warehouse's client library is imported only when an export loads into it
    from xeroml_pipelines.warehouses.bigquery import BigQueryWarehouse
    from xeroml_pipelines.warehouses.duckdb import DuckDBWarehouse
    from xeroml_pipelines.warehouses.redshift import RedshiftWarehouse
    from xeroml_pipelines.warehouses.snowflake import SnowflakeWarehouse

DEFAULT_WAREHOUSE_FILE = "xeroml-warehouse.duckdb"


class DuckDBWarehouseConfig(Strict):
    type: Literal["duckdb"]
    path: str = DEFAULT_WAREHOUSE_FILE
    table_prefix: TablePrefix = "xeroml_"

    def resource(self) -> DuckDBWarehouse:
        from xeroml_pipelines.warehouses.duckdb import DuckDBWarehouse

        return DuckDBWarehouse(path=self.path, table_prefix=self.table_prefix)


class SnowflakeWarehouseConfig(Strict):
    """COPY INTO from `stage`, a stage the user created over the export's bucket and prefix."""

    type: Literal["snowflake"]
    account: str
    user: str
    password_env: EnvVarName | None = None
    role: str | None = None
    warehouse: str | None = None
    database: str
    schema_name: str = "PUBLIC"
    stage: str = Field(pattern=r"^[A-Za-z_][\w$.]*$")
    table_prefix: TablePrefix = "xeroml_"

    def resource(self) -> SnowflakeWarehouse:
        from xeroml_pipelines.warehouses.snowflake import SnowflakeWarehouse

        return SnowflakeWarehouse(
            account=self.account,
            user=self.user,
            password=env(self.password_env),
            role=self.role,
            warehouse=self.warehouse,
            database=self.database,
            db_schema=self.schema_name,
            stage=self.stage,
            table_prefix=self.table_prefix,
        )


class RedshiftWarehouseConfig(Strict):
    """COPY from the S3 export with `iam_role_arn`; the export's destination must be S3."""

    type: Literal["redshift"]
    host: str
    port: int = 5439
    database: str
    user: str
    password_env: EnvVarName | None = None
    schema_name: str = "public"
    iam_role_arn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
    region: str | None = None
    table_prefix: TablePrefix = "xeroml_"

    def resource(self) -> RedshiftWarehouse:
        from xeroml_pipelines.warehouses.redshift import RedshiftWarehouse

        return RedshiftWarehouse(
            host=self.host,
            port=self.port,
            database=self.database,
            user=self.user,
            password=env(self.password_env),
            db_schema=self.schema_name,
            iam_role_arn=self.iam_role_arn,
            region=self.region,
            table_prefix=self.table_prefix,
        )


class BigQueryWarehouseConfig(Strict):
    """load_table_from_uri from the GCS export; the export's destination must be GCS."""

    type: Literal["bigquery"]
    project: str
    dataset: str = Field(pattern=r"^[A-Za-z0-9_]+$", max_length=1024)
    location: str | None = None
    credentials_env: EnvVarName | None = Field(default=None, description="Env var holding a base64 service-account key; else ADC")
    api_endpoint: str | None = Field(default=None, description="Only for an emulator")
    table_prefix: TablePrefix = "xeroml_"

    def resource(self) -> BigQueryWarehouse:
        from xeroml_pipelines.warehouses.bigquery import BigQueryClientResource, BigQueryWarehouse

        client = BigQueryClientResource(
            project=self.project,
            location=self.location,
            api_endpoint=self.api_endpoint,
            gcp_credentials=env(self.credentials_env),
        )
        return BigQueryWarehouse(bigquery=client, dataset=self.dataset, table_prefix=self.table_prefix)


WarehouseConfig = Annotated[
    DuckDBWarehouseConfig | SnowflakeWarehouseConfig | RedshiftWarehouseConfig | BigQueryWarehouseConfig,
    Field(discriminator="type"),
]
