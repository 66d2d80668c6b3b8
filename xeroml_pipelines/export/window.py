"""A partition's half-open time window and where its files live."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

Cadence = Literal["daily", "hourly"]
Mode = Literal["incremental", "snapshot"]

_STEP = {"daily": timedelta(days=1), "hourly": timedelta(hours=1)}


@dataclass(frozen=True)
class Window:
    """`[start, end)` in UTC. Half-open, so a row on a boundary belongs to exactly one window."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        for t in (self.start, self.end):
            if t.tzinfo is None or t.utcoffset() != timedelta(0):
                raise ValueError(f"window bounds must be UTC datetimes, got {t!r}")
        if self.end <= self.start:
            raise ValueError(f"empty window [{self.start}, {self.end})")

    @property
    def cadence(self) -> Cadence:
        if self.end - self.start == _STEP["hourly"]:
            return "hourly"
        if self.end - self.start == _STEP["daily"]:
            return "daily"
        raise ValueError(f"window [{self.start}, {self.end}) is neither a day nor an hour")

    @property
    def relative_path(self) -> str:
        """`2025-01-15` for a day, `2025-01-15/13` for an hour: the spec's layout, hours under the date."""
        day = self.start.strftime("%Y-%m-%d")
        return day if self.cadence == "daily" else f"{day}/{self.start:%H}"

    @property
    def step_ms(self) -> int:
        return int(_STEP[self.cadence].total_seconds() * 1000)

    @property
    def bucket(self) -> int:
        """The `_bucket` ClickHouse computes for rows of this window (see `clickhouse.queries`)."""
        return int(self.start.timestamp() * 1000) // self.step_ms

    def sql_params(self) -> dict[str, str]:
        fmt = "%Y-%m-%d %H:%M:%S.%f"
        return {"window_start": self.start.strftime(fmt)[:-3], "window_end": self.end.strftime(fmt)[:-3]}

    def as_dict(self) -> dict[str, str]:
        return {"start": _rfc3339(self.start), "end": _rfc3339(self.end)}


def _rfc3339(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
