"""Where an export's partitions are loaded, as declared in YAML: each warehouse's resource is
its own model, chosen by `type` (a client library is imported only when a load connects)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from xeroml_pipelines.warehouses.bigquery import BigQueryWarehouse
from xeroml_pipelines.warehouses.duckdb import DuckDBWarehouse
from xeroml_pipelines.warehouses.redshift import RedshiftWarehouse
from xeroml_pipelines.warehouses.snowflake import SnowflakeWarehouse

WarehouseConfig = Annotated[
    DuckDBWarehouse | SnowflakeWarehouse | RedshiftWarehouse | BigQueryWarehouse,
    Field(discriminator="type"),
]
