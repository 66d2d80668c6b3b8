"""The names the fleet's definitions share: asset keys, ops, jobs and partitions."""

from __future__ import annotations

from dagster import AssetKey, DailyPartitionsDefinition, HourlyPartitionsDefinition, TimeWindowPartitionsDefinition

from xeroml_pipelines.config.fleet import FleetConfig
from xeroml_pipelines.windows import Cadence


def fleet_asset_key(cadence: str, shard: int, table: str) -> AssetKey:
    return AssetKey(["fleet", cadence, f"shard_{shard}", table])


def fleet_op_name(cadence: str, shard: int) -> str:
    return f"fleet_{cadence}_shard_{shard}"


def fleet_job_name(cadence: str) -> str:
    return f"fleet_{cadence}"


def fleet_partitions(fleet: FleetConfig, cadence: Cadence) -> TimeWindowPartitionsDefinition:
    """One partition per window since the fleet's start date: a window means that window for
    every project due in it. Hourly over ten years is ~88,000 partitions, within Dagster's
    guidance of 100,000 per asset; a partition per project and window would pass it within weeks."""
    if cadence == "hourly":
        return HourlyPartitionsDefinition(start_date=f"{fleet.start_date:%Y-%m-%d}-00:00", timezone="UTC")
    return DailyPartitionsDefinition(start_date=f"{fleet.start_date:%Y-%m-%d}", timezone="UTC")
