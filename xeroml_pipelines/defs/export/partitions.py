"""An export's partitions: UTC days or hours from its start date."""

from __future__ import annotations

from dagster import DailyPartitionsDefinition, HourlyPartitionsDefinition, TimeWindowPartitionsDefinition

from xeroml_pipelines.config import ExportConfig


def partitions_for(export: ExportConfig) -> TimeWindowPartitionsDefinition:
    if export.cadence == "hourly":
        return HourlyPartitionsDefinition(start_date=f"{export.start_date:%Y-%m-%d}-00:00", timezone="UTC")
    return DailyPartitionsDefinition(start_date=f"{export.start_date:%Y-%m-%d}", timezone="UTC")
