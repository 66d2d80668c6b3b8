"""A partition's time window, and the span of consecutive windows one query reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from dagster import TimeWindowPartitionsDefinition

Cadence = Literal["daily", "hourly"]
Mode = Literal["incremental", "snapshot"]

STEPS: dict[Cadence, timedelta] = {"daily": timedelta(days=1), "hourly": timedelta(hours=1)}


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _sql_time(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


@dataclass(frozen=True)
class Window:
    """One partition: `[start, end)` in UTC, a day or an hour. Half-open, so a row on a boundary
    belongs to exactly one window."""

    partition: str  # the Dagster partition key
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        for t in (self.start, self.end):
            if t.tzinfo is None or t.utcoffset() != timedelta(0):
                raise ValueError(f"window bounds must be UTC datetimes, got {t!r}")
        if self.end <= self.start:
            raise ValueError(f"empty window [{self.start}, {self.end})")
        if self.end - self.start not in STEPS.values():
            raise ValueError(f"window [{self.start}, {self.end}) is neither a day nor an hour")

    @property
    def cadence(self) -> Cadence:
        return "hourly" if self.end - self.start == STEPS["hourly"] else "daily"

    @property
    def step_ms(self) -> int:
        return int(STEPS[self.cadence].total_seconds() * 1000)

    @property
    def index(self) -> int:
        """Whole windows since the epoch: the `_window_index` ClickHouse computes for its rows."""
        return int(self.start.timestamp() * 1000) // self.step_ms

    @property
    def relative_path(self) -> str:
        """`2025-01-15` for a day, `2025-01-15/13` for an hour: the spec's layout, hours under the date."""
        day = self.start.strftime("%Y-%m-%d")
        return day if self.cadence == "daily" else f"{day}/{self.start:%H}"

    @property
    def hive_path(self) -> str:
        """`date=2025-01-15` for a day, `date=2025-01-15/hour=13` for an hour (Hive-style folders)."""
        day = f"date={self.start:%Y-%m-%d}"
        return day if self.cadence == "daily" else f"{day}/hour={self.start:%H}"

    def as_dict(self) -> dict[str, str]:
        return {"start": _rfc3339(self.start), "end": _rfc3339(self.end)}


@dataclass(frozen=True)
class Span:
    """Consecutive windows of one cadence, read by one query: `[first.start, last.end)`."""

    windows: tuple[Window, ...]

    def __post_init__(self) -> None:
        if not self.windows:
            raise ValueError("a span holds at least one window")
        for before, after in zip(self.windows, self.windows[1:], strict=False):
            if after.start != before.end or after.cadence != before.cadence:
                raise ValueError(f"windows {before.partition} and {after.partition} are not consecutive")

    @classmethod
    def of(cls, windows: Sequence[Window]) -> Span:
        return cls(tuple(windows))

    @property
    def label(self) -> str:
        first, last = self.windows[0].partition, self.windows[-1].partition
        return first if first == last else f"{first}..{last}"

    def sql_params(self) -> dict[str, str | int]:
        """The query parameters every window query takes: its bounds and the window length."""
        return {
            "window_start": _sql_time(self.windows[0].start),
            "window_end": _sql_time(self.windows[-1].end),
            "window_ms": self.windows[0].step_ms,
        }


def windows_for(partitions_def: TimeWindowPartitionsDefinition, keys: Sequence[str]) -> tuple[Window, ...]:
    """The windows of Dagster partition keys, in the order given."""
    windows = []
    for key in keys:
        tw = partitions_def.time_window_for_partition_key(key)
        windows.append(Window(key, tw.start, tw.end))
    return tuple(windows)


def closed_window(cadence: Cadence, now: datetime, lag_minutes: int) -> datetime:
    """The start of the last window that closed at least `lag_minutes` before `now` (UTC)."""
    settled = now.astimezone(UTC) - timedelta(minutes=lag_minutes)
    if cadence == "hourly":
        return settled.replace(minute=0, second=0, microsecond=0) - STEPS["hourly"]
    return settled.replace(hour=0, minute=0, second=0, microsecond=0) - STEPS["daily"]


def partition_key(cadence: Cadence, start: datetime) -> str:
    """The Dagster partition key of the window starting at `start`."""
    return f"{start:%Y-%m-%d-%H:%M}" if cadence == "hourly" else f"{start:%Y-%m-%d}"
