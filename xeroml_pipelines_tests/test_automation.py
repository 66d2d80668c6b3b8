"""Schedules and late data: the partition that just closed is exported after its lag, and a
partition whose data changed after export is recounted, flagged and re-exported."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    build_schedule_context,
    build_sensor_context,
    materialize,
)

from xeroml_pipelines.clickhouse.changes import marks
from xeroml_pipelines.config import ConfigError, parse_config
from xeroml_pipelines.defs.location import build_definitions
from xeroml_pipelines_tests.factories import insert, score, trace
from xeroml_pipelines_tests.support import Exporter, SensorTicks


@pytest.mark.parametrize(
    "cadence,lag,tick,partition",
    [
        ("daily", 20, datetime(2025, 1, 16, 0, 20, tzinfo=UTC), "2025-01-15"),
        ("daily", 150, datetime(2025, 1, 16, 2, 30, tzinfo=UTC), "2025-01-15"),
        ("hourly", 20, datetime(2025, 1, 16, 13, 20, tzinfo=UTC), "2025-01-16-12:00"),
    ],
)
def test_schedule_requests_the_partition_that_just_closed(exporter: Exporter, cadence, lag, tick, partition) -> None:
    defs = build_definitions(exporter.config(cadence=cadence, lag_minutes=lag))
    schedule = defs.get_schedule_def(f"exp_{cadence}")
    assert schedule.execution_timezone == "UTC"
    assert schedule.cron_schedule == (f"{lag % 60} {lag // 60} * * *" if cadence == "daily" else f"{lag} * * * *")
    with DagsterInstance.ephemeral() as instance:
        context = build_schedule_context(
            instance=instance, scheduled_execution_time=tick, repository_def=defs.get_repository_def()
        )
        data = schedule.evaluate_tick(context)
    (request,) = data.run_requests
    assert request.partition_key == partition
    assert set(request.asset_selection or ()) == {AssetKey(["exp", t]) for t in ("traces", "observations", "scores", "sessions")}
    assert len(request.asset_check_keys or ()) == 8  # the run's checks: two per table


def test_lag_must_fit_the_cadence() -> None:
    text = (
        "clickhouse: {url: 'chdb:///x'}\nexports:\n"
        "  - {name: e, project_id: p, start_date: 2025-01-01, destination: {provider: local}, cadence: hourly, lag_minutes: 90}\n"
    )
    with pytest.raises(ConfigError, match="under 60"):
        parse_config(text)


def _recent(exporter: Exporter):
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day = today - timedelta(days=2)
    defs = build_definitions(exporter.config(start_date=(today - timedelta(days=5)).date().isoformat(), recheck_days=4))
    return defs, day, day.date().isoformat()


def _export_job(defs) -> str:
    """The export job of the one export (named after its partitions, shared with any export that has the same)."""
    (name,) = [j.name for j in defs.jobs if j.name.startswith("export_")]
    return name


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S")


def _run_checks_only(defs, key: str, instance: DagsterInstance):
    """What "Execute" on a partition's check does in the UI: a run of the checks alone."""
    checks = {k for c in defs.asset_checks for k in c.check_keys if k.name == "recount_matches_manifest"}
    job = defs.resolve_job_def(_export_job(defs)).get_subset(asset_selection=set(), asset_check_selection=checks)
    return job.execute_in_process(partition_key=key, instance=instance)


def test_recount_check_flags_data_that_changed_after_export(exporter: Exporter) -> None:
    defs, day, key = _recent(exporter)
    insert(exporter.ch, "traces", [trace("a", _ts(day + timedelta(hours=3))), trace("b", _ts(day + timedelta(hours=4)))])
    with DagsterInstance.ephemeral() as instance:
        # the export job, as the schedule runs it: exports every table, then checks each partition
        result = defs.resolve_job_def(_export_job(defs)).execute_in_process(partition_key=key, instance=instance)
        evaluations = {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}
        assert len(evaluations) == 8 and all(e.passed for e in evaluations.values())

        # b updated into the next day and a late row: the count stays 2, the fingerprint does not
        insert(
            exporter.ch,
            "traces",
            [
                trace("b", _ts(day + timedelta(days=1, hours=1)), timestamp=_ts(day + timedelta(hours=4))),
                trace("late", _ts(day + timedelta(hours=5))),
            ],
        )
        result = _run_checks_only(defs, key, instance)
    evaluations = {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}
    assert not evaluations["traces"].passed and evaluations["traces"].metadata["drifted_partitions"].value == 1
    assert f"{key}: 2 rows exported, 2 now" in evaluations["traces"].description
    assert evaluations["scores"].passed


def test_late_data_sensor_reexports_drifted_partitions_once(exporter: Exporter) -> None:
    defs, day, key = _recent(exporter)
    insert(exporter.ch, "traces", [trace("a", _ts(day + timedelta(hours=3)))])
    exports = [defs.get_assets_def(AssetKey(["exp", t])) for t in ("traces", "observations", "scores", "sessions")]
    sensor = next(s for s in defs.sensors if s.name == "exp_late_data")
    with DagsterInstance.ephemeral() as instance:
        for k in (day - timedelta(days=1), day, day + timedelta(days=1)):
            materialize(exports, partition_key=k.date().isoformat(), resources=defs.resources, instance=instance)
        with build_sensor_context(instance=instance, definitions=defs, resources=defs.resources) as ctx:
            result = sensor.evaluate_tick(ctx)
        # the window before the three exported has no manifest: "not exported", never "match"
        assert result.run_requests == [] and result.skip_message == (
            "4 recent partitions: 12 table partitions recounted match their manifests, "
            "4 not exported yet (left to the schedule or a backfill), 0 unchanged since the previous tick"
        )

        insert(exporter.ch, "traces", [trace("late", _ts(day + timedelta(hours=6)), session_id="s")])
        with build_sensor_context(instance=instance, definitions=defs, resources=defs.resources) as ctx:
            result = sensor.evaluate_tick(ctx)
        (request,) = result.run_requests
        assert request.partition_key == key
        assert sorted(k.path[-1] for k in request.asset_selection) == ["sessions", "traces"]
        rerun = materialize(
            exports, partition_key=key, resources=defs.resources, instance=instance, selection=request.asset_selection
        )
        assert rerun.success
        with build_sensor_context(instance=instance, definitions=defs, resources=defs.resources) as ctx:
            assert sensor.evaluate_tick(ctx).run_requests == []
    assert {line["id"] for line in exporter.lines("traces", key)} == {"a", "late"}


def test_late_data_sensor_recounts_only_what_new_rows_may_have_changed(exporter: Exporter) -> None:
    """Ticks carry their cursor, as the daemon's do: a tick without new rows recounts nothing, and
    each kind of late change still reaches the partition it changed - a late row, a record
    updated out of the partition (into today, beyond the horizon), a delete, a trace moved to
    another session - and a partition entering the horizon is recounted once."""
    defs, day, key = _recent(exporter)
    before = (day - timedelta(days=1)).date().isoformat()
    insert(
        exporter.ch,
        "traces",
        [
            trace("a", _ts(day + timedelta(hours=3)), session_id="s1"),
            trace("b", _ts(day + timedelta(hours=4)), session_id="s1"),
            trace("c", _ts(day - timedelta(hours=20)), session_id="s2"),
        ],
    )
    exports = [defs.get_assets_def(AssetKey(["exp", t])) for t in ("traces", "observations", "scores", "sessions")]
    with DagsterInstance.ephemeral() as instance:
        tick = SensorTicks(defs, "exp_late_data", instance)

        def reexport(result) -> set[tuple[str, str]]:
            changed = set()
            for request in result.run_requests:
                changed |= {(request.partition_key, k.path[-1]) for k in request.asset_selection}
                materialize(
                    exports,
                    partition_key=request.partition_key,
                    resources=defs.resources,
                    instance=instance,
                    selection=request.asset_selection,
                )
            return changed

        for k in (day - timedelta(days=2), day - timedelta(days=1), day, day + timedelta(days=1)):
            materialize(exports, partition_key=k.date().isoformat(), resources=defs.resources, instance=instance)
        first = tick()  # no cursor yet: every recent partition recounted
        assert (
            first.run_requests == []
            and ": 16 table partitions recounted match their manifests, 0 not exported yet" in first.skip_message
        )
        quiet = tick()
        assert (
            quiet.run_requests == []
            and ": 0 table partitions recounted match their manifests, 0 not exported yet" in quiet.skip_message
        )

        # b updated today (beyond the horizon): it must leave its partition, and so must its session line
        insert(
            exporter.ch, "traces", [trace("b", _ts(datetime.now(UTC)), timestamp=_ts(day + timedelta(hours=4)), session_id="s1")]
        )
        assert reexport(tick()) == {(key, "traces"), (key, "sessions")}
        assert {line["id"] for line in exporter.lines("traces", key)} == {"a"}

        # a late row and a delete, in two partitions
        insert(exporter.ch, "scores", [score("late", _ts(day + timedelta(hours=7)))])
        insert(exporter.ch, "traces", [{**trace("c", _ts(day - timedelta(hours=19)), session_id="s2"), "is_deleted": 1}])
        assert reexport(tick()) == {(key, "scores"), (before, "traces"), (before, "sessions")}
        assert exporter.lines("traces", before)[0]["is_deleted"] is True

        # a trace moved to another session in its own partition: both sessions' lines
        insert(exporter.ch, "traces", [trace("a", _ts(day + timedelta(hours=8)), session_id="s3")])
        changed = reexport(tick())
        assert changed == {(key, "traces"), (key, "sessions")}
        assert {line["id"] for line in exporter.lines("sessions", key)} == {"s3"}  # s1's last trace left
        assert tick().run_requests == []

        # a partition entering the horizon, exported after the previous tick: rows committed since
        # its export are above that tick's marks, so it is not recounted
        state = json.loads(tick.cursor)
        tick.cursor = json.dumps({**state, "horizon_end": day.isoformat(), "marked_at": (day - timedelta(days=1)).isoformat()})
        assert ": 0 table partitions recounted match their manifests, 0 not exported yet" in tick().skip_message
        # exported before the previous tick, a row committed in between (below that tick's marks):
        # recounted when it enters the horizon
        insert(exporter.ch, "scores", [score("early", _ts(day + timedelta(hours=9)))])
        state = json.loads(tick.cursor)
        state["marks"] = marks(exporter.ch, list(state["marks"]))
        tick.cursor = json.dumps(state)
        assert tick().run_requests == []  # with the marks past it, only entering the horizon gets it recounted
        state["horizon_end"] = day.isoformat()  # as if the previous tick's horizon ended before it
        tick.cursor = json.dumps(state)
        assert reexport(tick()) == {(key, "scores")}
