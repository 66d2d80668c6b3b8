"""The code location: everything is built from the configuration (see `config.py`)."""

from __future__ import annotations

from dagster import Definitions, in_process_executor, multiprocess_executor

from xeroml_pipelines.config import XeroMLConfig, load_config
from xeroml_pipelines.defs.export.assets import build_export_assets, io_manager_key
from xeroml_pipelines.defs.export.checks import build_export_checks
from xeroml_pipelines.defs.export.resources import clickhouse_resource, export_io_manager
from xeroml_pipelines.defs.export.schedules import build_export_schedule, export_job
from xeroml_pipelines.defs.export.sensors import build_late_data_sensor
from xeroml_pipelines.defs.warehouse.assets import build_warehouse_assets
from xeroml_pipelines.defs.warehouse.resources import warehouse_resource, warehouse_resource_key
from xeroml_pipelines.defs.warehouse.sensors import build_load_sensor


def build_definitions(config: XeroMLConfig) -> Definitions:
    clickhouse = clickhouse_resource(config.clickhouse)
    jobs = {e.name: export_job(e) for e in config.exports}
    return Definitions(
        jobs=list(jobs.values()),
        schedules=[build_export_schedule(e, jobs[e.name]) for e in config.exports],
        assets=[a for e in config.exports for a in (*build_export_assets(e), *build_warehouse_assets(e))],
        asset_checks=[c for e in config.exports for c in build_export_checks(e)],
        sensors=[
            *(build_load_sensor(e) for e in config.exports if e.warehouse),
            *(build_late_data_sensor(e) for e in config.exports if e.recheck_days),
        ],
        resources={
            "clickhouse": clickhouse,
            **{io_manager_key(e): export_io_manager(e) for e in config.exports},
            **{warehouse_resource_key(e): warehouse_resource(e) for e in config.exports if e.warehouse},
        },
        # chDB locks its directory to one process: on the embedded engine every step of a run
        # must share the run's process.
        executor=in_process_executor if clickhouse.is_embedded else multiprocess_executor,
    )


defs = build_definitions(load_config())
