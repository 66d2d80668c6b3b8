"""Late-data benchmark: the ClickHouse time the late-data sensor and the recount check spend per
day, against the export's own, on 10 days of 20,000 observations a day (the export benchmark's
generator; made in a temporary folder, removed after).

    python benchmarks/late_data_benchmark.py

A daily export with the defaults (recheck_days 7, a tick every 60 minutes: 24 ticks a day):
- export: the four tables of one day (ClickHouse's part: the manifests' `query_seconds`);
- recount check: the four tables of the run's partition (once per scheduled run);
- sensor, recount everything (the previous design): 24 ticks that recount 7 partitions x 4 tables;
- sensor, as built: a day is 24 ticks with no rows added (one parts query; on chDB each tick
  also opens the embedded engine, which the runs need closed between ticks); a partition entering
  the horizon costs nothing more when its export began after the previous tick (the schedule's
  case), a recount of it otherwise (shown); rows added since the last tick cost a look at them
  (shown: 20,000 new observations of the open day) and a recount of the partitions they touch
  (shown: 100 observations of the last closed day updated into the open day).

"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dagster import DagsterInstance, build_sensor_context, materialize  # noqa: E402

from benchmarks.export_benchmark import _generate  # noqa: E402
from xeroml_pipelines.clickhouse.changes import marks  # noqa: E402
from xeroml_pipelines.config import XeroMLConfig  # noqa: E402
from xeroml_pipelines.defs.export import sensors  # noqa: E402
from xeroml_pipelines.defs.location import build_definitions  # noqa: E402

TABLES = ("traces", "observations", "scores", "sessions")
NOW = datetime(2025, 1, 23, 0, 30, tzinfo=UTC)  # the sensor's clock: 7 closed days behind it
DAY = date(2025, 1, 22)


class _Clock(datetime):
    @classmethod
    def now(cls, tz=None):  # noqa: ANN001 - datetime's signature
        return NOW


def _median(f, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        f()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    out = Path(tempfile.mkdtemp(prefix="xeroml-late-"))
    try:
        _measure(out)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def _measure(out: Path) -> None:
    db = out / "db"
    _generate(db, 20_000, days=10)
    config = XeroMLConfig.model_validate(
        {
            "clickhouse": {"url": f"chdb://{db}", "database": "bench"},
            "exports": [
                {"name": "m", "project_id": "demo", "start_date": "2025-01-13", "retries": 0, "recheck_days": 7}
                | {"destination": {"provider": "local", "path": str(out)}}
            ],
        }
    )
    defs = build_definitions(config)
    assets = [defs.get_assets_def(["m", t]) for t in TABLES]
    checks = {k for c in defs.asset_checks for k in c.check_keys if k.name == "recount_matches_manifest"}
    from xeroml_pipelines.defs.export.schedules import export_job_name

    job_name = export_job_name(config.exports[0])
    check_job = defs.resolve_job_def(job_name).get_subset(asset_selection=set(), asset_check_selection=checks)
    sensors.datetime = _Clock  # type: ignore[misc] - the sensor's horizon at NOW
    sensor = next(s for s in defs.sensors if s.name == "m_late_data")
    with DagsterInstance.ephemeral() as instance:
        for back in range(8):
            partition = (DAY - timedelta(days=back)).isoformat()
            materialize(assets, partition_key=partition, resources=defs.resources, instance=instance)
        export_s = sum(json.loads((out / "_manifests" / t / f"{DAY}.json").read_text())["query_seconds"] for t in TABLES)
        check_s = _median(lambda: check_job.execute_in_process(partition_key=DAY.isoformat(), instance=instance))

        def tick(cursor: str | None):
            with build_sensor_context(instance=instance, definitions=defs, resources=defs.resources, cursor=cursor) as ctx:
                result = sensor.evaluate_tick(ctx)
            return result

        full_s = _median(lambda: tick(None))
        cursor = tick(None).cursor
        quiet_s = _median(lambda: tick(cursor))
        state = json.loads(cursor)
        # the previous tick before the day's export: the entering partition is recounted
        entered = {**state, "horizon_end": (NOW - timedelta(days=1, minutes=30)).isoformat()}
        entered_s = _median(lambda: tick(json.dumps({**entered, "marked_at": datetime.now(UTC).isoformat()})))
        # what a quiet tick asks ClickHouse, on an engine already open (a server's case)
        clickhouse = defs.resources["clickhouse"]
        client = clickhouse.get_client()
        parts_s = _median(lambda: marks(clickhouse, TABLES), repeats=9)
        # (a subquery: in its own WHERE, `event_ts` would be the replacement's alias)
        copy = (
            "INSERT INTO bench.observations SELECT * REPLACE ({}) "
            "FROM (SELECT * FROM bench.observations WHERE project_id = 'demo' AND "
        )
        open_day = "toDateTime64('2025-01-23 00:10:00', 3, 'UTC') AS event_ts"
        client.command(copy.format(f"generateUUIDv4() AS id, {open_day}") + "toDate(event_ts) = '2025-01-21' LIMIT 20000)")
        clickhouse.close()
        ingest_s = _median(lambda: tick(cursor), repeats=1)  # the new rows: seen by one tick
        cursor = tick(None).cursor
        client = clickhouse.get_client()
        client.command(copy.format(open_day) + "toDate(event_ts) = '2025-01-22' LIMIT 100)")
        clickhouse.close()
        update = tick(cursor)
        update_s = _median(lambda: tick(cursor), repeats=1)
        assert [r.partition_key for r in update.run_requests] == [DAY.isoformat()], update.run_requests
    print(f"export of one day (ClickHouse query time)        {export_s:7.2f} s")
    print(f"recount check of one run (whole check step)      {check_s:7.2f} s")
    print(f"sensor tick, recount all 7 x 4 (first tick)      {full_s:7.2f} s   x24 a day = {24 * full_s:6.1f} s")
    print(f"sensor tick, no rows added                       {quiet_s:7.3f} s")
    print(f"sensor tick, entering partition exported early   {entered_s:7.2f} s")
    print(f"  of which the parts query on an open engine     {parts_s:7.3f} s   (the rest: opening chDB, Dagster)")
    print(f"sensor tick after 20,000 new rows (open day)     {ingest_s:7.2f} s")
    print(f"sensor tick after 100 updates out of the day     {update_s:7.2f} s   (recounts the day: re-export requested)")
    per_day = 24 * quiet_s
    print(f"sensor per day as built: 24 quiet ticks          {per_day:7.2f} s   ({per_day / export_s:.2f}x the export)")
    server = 24 * parts_s
    print(f"  with a ClickHouse server (parts queries only)  {server:7.2f} s   ({server / export_s:.2f}x the export)")
    print(f"sensor per day, recount everything               {24 * full_s:7.2f} s   ({24 * full_s / export_s:.1f}x the export)")


if __name__ == "__main__":
    main()
