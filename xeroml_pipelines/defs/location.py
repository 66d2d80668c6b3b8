"""The code location built from a configuration: per export its assets, checks, job, schedule,
sensors and resources (its destination, the IO manager over it, its warehouse)."""

from __future__ import annotations

from typing import Any

from dagster import Definitions, EnvVar, in_process_executor, multiprocess_executor

from xeroml_pipelines.config import ExportConfig, XeroMLConfig
from xeroml_pipelines.defs.alerts.resources import SlackWebhook
from xeroml_pipelines.defs.alerts.sensors import ALERT_WEBHOOK_KEY, build_freshness_alert_sensor
from xeroml_pipelines.defs.export.assets import build_export_assets, build_source_specs
from xeroml_pipelines.defs.export.checks import build_export_checks
from xeroml_pipelines.defs.export.schedules import build_export_schedule, build_verify_schedule, export_jobs
from xeroml_pipelines.defs.export.sensors import build_late_data_sensor
from xeroml_pipelines.defs.export.verify import verify_job
from xeroml_pipelines.defs.fleet.assets import build_fleet_assets
from xeroml_pipelines.defs.fleet.resources import REGISTRY_KEY, SCOPE_KEY, FleetScope, RegistryResource
from xeroml_pipelines.defs.fleet.schedules import build_fleet_schedule, fleet_job
from xeroml_pipelines.defs.fleet.sensors import build_catch_up_sensor
from xeroml_pipelines.defs.keys import destination_key, io_manager_key, warehouse_key
from xeroml_pipelines.defs.warehouse.assets import build_warehouse_assets
from xeroml_pipelines.defs.warehouse.sensors import build_load_sensor
from xeroml_pipelines.defs.warehouse.sensors import load_jobs as load_jobs_of
from xeroml_pipelines.io_managers.azure import AzureBlobExportIOManager
from xeroml_pipelines.io_managers.base import ExportIOManager
from xeroml_pipelines.io_managers.gcs import GCSExportIOManager
from xeroml_pipelines.io_managers.local import LocalExportIOManager
from xeroml_pipelines.io_managers.s3 import S3ExportIOManager

IO_MANAGERS: dict[str, type[ExportIOManager]] = {
    "local": LocalExportIOManager,
    "s3": S3ExportIOManager,
    "gcs": GCSExportIOManager,
    "azure": AzureBlobExportIOManager,
}


def export_resources(export: ExportConfig) -> dict[str, Any]:
    # One destination configuration serves the IO manager (nested in it) and, under its own key,
    # the checks and the loads (a sensor and the verify job, which serves every export, open
    # their own: sensors see only the top-level resources). Dagster initializes each use on its
    # own; clients are created on first use, so a step pays only for the one it uses.
    destination = export.destination
    resources: dict[str, Any] = {
        destination_key(export): destination,
        io_manager_key(export): IO_MANAGERS[destination.provider](destination=destination, layout=export.object_layout()),
    }
    if export.warehouse:
        resources[warehouse_key(export)] = export.warehouse
    return resources


def _distinct(jobs: dict[str, Any]) -> list[Any]:
    """Each job once (exports with the same partitions share one)."""
    return list({id(job): job for job in jobs.values()}.values())


def build_definitions(config: XeroMLConfig) -> Definitions:
    clickhouse = config.clickhouse
    # An export's resources are bound to its own definitions, not given to Definitions: Dagster
    # resolves every asset's and job's requirements against all top-level resources, so a key
    # per export at the top made loading quadratic in the number of exports.
    bound = {e.name: export_resources(e) for e in config.exports}
    jobs = export_jobs(config.exports)
    verify = verify_job(config.exports)
    load_jobs = load_jobs_of(config.exports)
    resources: dict[str, Any] = {"clickhouse": clickhouse}
    alerts = []
    if config.alerts:
        if config.exports:
            alerts.append(build_freshness_alert_sensor(config))
        resources[ALERT_WEBHOOK_KEY] = SlackWebhook(url=EnvVar(config.alerts.webhook_url_env))
    fleet = config.fleet
    fleet_jobs = {c: fleet_job(fleet, c) for c in fleet.cadences} if fleet else {}
    if fleet:
        resources |= {REGISTRY_KEY: RegistryResource(), SCOPE_KEY: FleetScope()}
    return Definitions(
        jobs=[*_distinct(jobs), *([verify] if config.exports else []), *_distinct(load_jobs), *fleet_jobs.values()],
        schedules=[
            *(build_export_schedule(e, jobs[e.name]) for e in config.exports),
            *(build_verify_schedule(e, verify) for e in config.exports if e.verify_cron),
            *(build_fleet_schedule(fleet, c, job) for c, job in fleet_jobs.items() if fleet),
        ],
        assets=[
            *(
                a
                for e in config.exports
                for a in (*build_export_assets(e, bound[e.name]), *build_warehouse_assets(e, bound[e.name]))
            ),
            *build_source_specs(config.exports),
            *(build_fleet_assets(fleet, alerts=config.alerts is not None) if fleet else ()),
        ],
        asset_checks=[build_export_checks(e, bound[e.name]) for e in config.exports],
        sensors=[
            *(build_load_sensor(e, load_jobs[e.name]) for e in config.exports if e.warehouse),
            *(build_late_data_sensor(e) for e in config.exports if e.recheck_days),
            *alerts,
            *([build_catch_up_sensor(fleet, list(fleet_jobs.values()))] if fleet else []),
        ],
        resources=resources,
        # chDB locks its directory to one process: on the embedded engine every step of a run
        # must share the run's process.
        executor=in_process_executor if clickhouse.is_embedded else multiprocess_executor,
    )
