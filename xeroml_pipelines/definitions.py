"""The code location: everything is built from the configuration (see `config.py`)."""

from __future__ import annotations

from dagster import Definitions, in_process_executor, multiprocess_executor

from xeroml_pipelines.config import XeroMLConfig, load_config
from xeroml_pipelines.defs.export.assets import build_export_assets, io_manager_key
from xeroml_pipelines.defs.export.checks import build_export_checks
from xeroml_pipelines.defs.export.resources import clickhouse_resource, export_io_manager


def build_definitions(config: XeroMLConfig) -> Definitions:
    clickhouse = clickhouse_resource(config.clickhouse)
    return Definitions(
        assets=[a for export in config.exports for a in build_export_assets(export)],
        asset_checks=[c for export in config.exports for c in build_export_checks(export)],
        resources={
            "clickhouse": clickhouse,
            **{io_manager_key(e): export_io_manager(e) for e in config.exports},
        },
        # chDB locks its directory to one process: on the embedded engine every step of a run
        # must share the run's process.
        executor=in_process_executor if clickhouse.is_embedded else multiprocess_executor,
    )


defs = build_definitions(load_config())
