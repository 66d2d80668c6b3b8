"""Resources built from the configuration: the ClickHouse source and one IO manager per export."""

from __future__ import annotations

from dagster import EnvVar

from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.config import ClickHouseConfig, ExportConfig, LocalDestination
from xeroml_pipelines.io_managers.base import ExportIOManager
from xeroml_pipelines.io_managers.local import LocalExportIOManager


def clickhouse_resource(cfg: ClickHouseConfig) -> ClickHouseResource:
    return ClickHouseResource(
        url=cfg.url,
        user=cfg.user,
        password=EnvVar(cfg.password_env) if cfg.password_env else None,
        database=cfg.database,
    )


def export_io_manager(export: ExportConfig) -> ExportIOManager:
    dest = export.destination
    if isinstance(dest, LocalDestination):
        return LocalExportIOManager(base_dir=dest.path, prefix=dest.prefix, compression=export.compression)
    raise NotImplementedError(f"destination provider {dest.provider!r}")
