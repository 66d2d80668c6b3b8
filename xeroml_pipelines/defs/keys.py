"""The names an export's definitions share: asset keys, resource keys, pools and partitions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

from dagster import AssetKey, DailyPartitionsDefinition, HourlyPartitionsDefinition, TimeWindowPartitionsDefinition

from xeroml_pipelines.config import ExportConfig
from xeroml_pipelines.config.exports import SOURCE_PREFIX
from xeroml_pipelines.destinations.base import Destination

T = TypeVar("T")

# Limits how many export steps query ClickHouse at once, across runs (limit: dagster.yaml).
CLICKHOUSE_POOL = "xeroml_clickhouse"
# DuckDB takes one writer at a time; cloud warehouses take more, but loads are cheap next to exports.
WAREHOUSE_POOL = "xeroml_warehouse"


def source_asset_key(table: str) -> AssetKey:
    """One of XeroML's ClickHouse tables, upstream of the exports that read it: lineage, not a
    dependency of one export's files on another's (a blocking check of the traces files would
    otherwise stop the sessions export of the same run). No export is named like its prefix."""
    return AssetKey([SOURCE_PREFIX, table])


def export_asset_key(export: ExportConfig, table: str) -> AssetKey:
    return AssetKey([export.name, table])


def warehouse_asset_key(export: ExportConfig, table: str) -> AssetKey:
    return AssetKey([export.name, "warehouse", table])


def io_manager_key(export: ExportConfig) -> str:
    return f"{export.name}_io_manager"


def destination_key(export: ExportConfig) -> str:
    return f"{export.name}_destination"


def warehouse_key(export: ExportConfig) -> str:
    return f"{export.name}_warehouse"


@contextmanager
def open_destination(export: ExportConfig) -> Iterator[Destination]:
    """An export's destination opened in code (a sensor's tick): a copy of its own, so that the
    clients it opens are this tick's, closed after."""
    destination = export.destination.model_copy()
    try:
        yield destination
    finally:
        destination.close()


def resource(resources: Any, key: str, kind: type[T]) -> T:
    """An export's resource from a run's resources. Dagster passes resources to a function by
    parameter name, and an export's keys are its own (one code location holds many exports,
    each definition bound to its own resources), so the definitions built per export read theirs
    by key, here, checked for type."""
    value = getattr(resources, key)
    if not isinstance(value, kind):
        raise TypeError(f"resource {key!r} is a {type(value).__name__}, expected a {kind.__name__}")
    return value


def partitions_for(export: ExportConfig) -> TimeWindowPartitionsDefinition:
    """UTC days or hours from the export's start date (to its end date, when it has one)."""
    # Dagster's end is exclusive: the day after the last one
    end = export.end_date + timedelta(days=1) if export.end_date else None
    if export.cadence == "hourly":
        return HourlyPartitionsDefinition(
            start_date=f"{export.start_date:%Y-%m-%d}-00:00", end_date=f"{end:%Y-%m-%d}-00:00" if end else None, timezone="UTC"
        )
    return DailyPartitionsDefinition(
        start_date=f"{export.start_date:%Y-%m-%d}", end_date=f"{end:%Y-%m-%d}" if end else None, timezone="UTC"
    )
