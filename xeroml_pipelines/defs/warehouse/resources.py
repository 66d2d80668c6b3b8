"""The warehouse resource of an export, from its configuration."""

from __future__ import annotations

from xeroml_pipelines.config import ExportConfig
from xeroml_pipelines.warehouses.duckdb import DuckDBWarehouse


def warehouse_resource_key(export: ExportConfig) -> str:
    return f"{export.name}_warehouse"


def warehouse_resource(export: ExportConfig) -> DuckDBWarehouse:
    assert export.warehouse is not None
    return DuckDBWarehouse(path=export.warehouse.path, table_prefix=export.warehouse.table_prefix)
