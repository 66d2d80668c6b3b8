"""Schedules and late data: the partition that just closed is exported after its lag, and a
partition whose data changed after export is recounted, flagged and re-exported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    build_schedule_context,
    build_sensor_context,
    materialize,
)

from xeroml_pipelines.config import ConfigError, parse_config
from xeroml_pipelines.definitions import build_definitions
from xeroml_pipelines_tests.factories import insert, trace
from xeroml_pipelines_tests.support import Exporter


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
        data = schedule.evaluate_tick(build_schedule_context(instance=instance, scheduled_execution_time=tick))
    (request,) = data.run_requests
    assert request.partition_key == partition


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


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S")


def _run_checks_only(defs, key: str, instance: DagsterInstance):
    """What "Execute" on a partition's check does in the UI: a run of the checks alone."""
    checks = {k for c in defs.asset_checks for k in c.check_keys if k.name == "recount_matches_manifest"}
    job = defs.resolve_job_def("exp_export").get_subset(asset_selection=set(), asset_check_selection=checks)
    return job.execute_in_process(partition_key=key, instance=instance)


def test_recount_check_flags_data_that_changed_after_export(exporter: Exporter) -> None:
    defs, day, key = _recent(exporter)
    insert(exporter.ch, "traces", [trace("a", _ts(day + timedelta(hours=3))), trace("b", _ts(day + timedelta(hours=4)))])
    with DagsterInstance.ephemeral() as instance:
        # the export job, as the schedule runs it: exports every table, then checks each partition
        result = defs.resolve_job_def("exp_export").execute_in_process(partition_key=key, instance=instance)
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
        assert result.run_requests == [] and result.skip_message.endswith("match their manifests")

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
