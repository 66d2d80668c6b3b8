"""The fleet: every registered export (`xeroml destinations`) run by a fixed set of assets, one
per cadence, table and shard, whatever the number of projects."""

from __future__ import annotations

from datetime import date

from pydantic import Field, field_validator

from xeroml_pipelines.config.base import Strict, TableName, distinct, not_in_future
from xeroml_pipelines.tables import TABLES
from xeroml_pipelines.windows import Cadence


class FleetConfig(Strict):
    start_date: date = Field(description="The first window of the fleet's partitions (a project's own start_date may be later)")
    shards: int = Field(
        default=1, ge=1, le=64, description="Projects are split by a stable hash of their id: one run per shard and window"
    )
    cadences: tuple[Cadence, ...] = Field(default=("hourly", "daily"), description="The cadences projects may choose")
    tables: tuple[TableName, ...] = Field(default=tuple(TABLES), description="The tables projects may export")
    lag_minutes: int = Field(default=20, ge=0, lt=60, description="Wait after a window closes before exporting it")
    retries: int = Field(
        default=2, ge=0, le=10, description="In a run, a project whose destination failed transiently is tried again"
    )
    retry_delay_s: float = Field(default=10, ge=0, le=600, description="First retry delay; doubles each time")
    disable_after: int = Field(
        default=3, ge=1, le=100, description="Consecutive runs whose destination refused: the project is disabled"
    )
    uploads: int = Field(default=8, ge=1, le=64, description="Projects whose files are committed at once, per run")
    max_partitions_per_run: int = Field(default=24, ge=1, le=744, description="Backfills: windows exported by one run")
    catch_up_runs: int = Field(
        default=4, ge=1, le=100, description="Runs the catch-up sensor starts per tick for windows projects missed"
    )

    @field_validator("cadences")
    @classmethod
    def _cadences(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        distinct(v, "cadence")
        return v

    @field_validator("tables")
    @classmethod
    def _tables(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        distinct(v, "table")
        return v

    @field_validator("start_date")
    @classmethod
    def _start(cls, v: date) -> date:
        return not_in_future(v)
