"""A session's cost and usage follow its observations, not only its traces (issue 21's bug):
a generation's cost that arrives in a later window, or late inside an exported one, or an
observation deleted later, reaches the session's line, and the "current sessions" query (the
line with the greatest event_ts per session) returns it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dagster import AssetKey, DagsterInstance, materialize

from xeroml_pipelines.defs.location import build_definitions
from xeroml_pipelines_tests.factories import insert, observation, trace
from xeroml_pipelines_tests.support import Exporter, SensorTicks


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S")


def _current(exporter: Exporter, days: list[str]) -> dict:
    """README's "current sessions": per id, the line with the greatest event_ts (a tombstone wins a tie)."""
    lines = [line for day in days if exporter.path("sessions", day).exists() for line in exporter.lines("sessions", day)]
    best: dict[str, dict] = {}
    for line in lines:
        kept = best.get(line["id"])
        if kept is None or (line["event_ts"], line["is_deleted"]) > (kept["event_ts"], kept["is_deleted"]):
            best[line["id"]] = line
    return best


def test_a_cost_arriving_in_a_later_window_and_a_deleted_observation(exporter: Exporter) -> None:
    insert(exporter.ch, "traces", [trace("T", "2025-01-15 10:00", session_id="S")])
    insert(exporter.ch, "observations", [observation("O", "T", "2025-01-15 10:01", total_cost=1.0)])
    exporter.run("2025-01-15", tables=("traces", "observations", "sessions"))
    assert _current(exporter, ["2025-01-15"])["S"]["total_cost"] == pytest.approx(1.0)

    # the generation's cost arrives the next day; the trace does not change
    insert(
        exporter.ch, "observations", [observation("O", "T", "2025-01-16 10:00", start_time="2025-01-15 10:01", total_cost=5.0)]
    )
    exporter.run("2025-01-16", tables=("traces", "observations", "sessions"))
    (line,) = exporter.lines("sessions", "2025-01-16")
    assert line["id"] == "S" and line["total_cost"] == pytest.approx(5.0) and line["event_ts"] == "2025-01-16T10:00:00.000Z"
    assert exporter.manifest("traces", "2025-01-16")["rows"] == 0
    assert _current(exporter, ["2025-01-15", "2025-01-16"])["S"]["total_cost"] == pytest.approx(5.0)

    # deleted two days later: its cost leaves the session, in a line newer than every other
    insert(exporter.ch, "observations", [observation("O", "T", "2025-01-17 09:00", start_time="2025-01-15 10:01", is_deleted=1)])
    exporter.run("2025-01-17", tables=("traces", "observations", "sessions"))
    current = _current(exporter, ["2025-01-15", "2025-01-16", "2025-01-17"])["S"]
    assert current["total_cost"] == 0 and current["event_ts"] == "2025-01-17T09:00:00.000Z" and not current["is_deleted"]


def test_a_late_cost_inside_an_exported_window_reaches_its_sessions_through_the_sensor(exporter: Exporter) -> None:
    """Cursor carried across ticks, as the daemon's: the tick after a late observation row
    requests the sessions of its window too, and the re-export carries the new cost."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day = today - timedelta(days=2)
    key = day.date().isoformat()
    defs = build_definitions(exporter.config(start_date=(today - timedelta(days=5)).date().isoformat(), recheck_days=4))
    insert(exporter.ch, "traces", [trace("T", _ts(day + timedelta(hours=10)), session_id="S")])
    insert(exporter.ch, "observations", [observation("O", "T", _ts(day + timedelta(hours=10, minutes=1)), total_cost=1.0)])
    exports = [defs.get_assets_def(AssetKey(["exp", t])) for t in ("traces", "observations", "scores", "sessions")]
    with DagsterInstance.ephemeral() as instance:
        materialize(exports, partition_key=key, resources=defs.resources, instance=instance)
        tick = SensorTicks(defs, "exp_late_data", instance)

        assert tick().run_requests == []  # first tick: everything recounted, nothing drifted
        assert tick().run_requests == []  # quiet

        late = observation("O", "T", _ts(day + timedelta(hours=11)), start_time=_ts(day + timedelta(hours=10, minutes=1)))
        insert(exporter.ch, "observations", [{**late, "total_cost": 7.0}])
        (request,) = tick().run_requests
        assert request.partition_key == key
        assert {k.path[-1] for k in request.asset_selection} == {"observations", "sessions"}
        materialize(exports, partition_key=key, resources=defs.resources, instance=instance, selection=request.asset_selection)
        assert tick().run_requests == []
    (line,) = exporter.lines("sessions", key)
    assert line["total_cost"] == pytest.approx(7.0) and line["event_ts"].startswith(f"{key}T11:00:00")
