"""The incremental window query reads the granules of its window, not the whole table."""

from __future__ import annotations

import re

from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.sql.selection import latest_in_window_filter
from xeroml_pipelines.sql.source_tables import SOURCES


def _granules(plan: str) -> dict[str, tuple[int, int]]:
    """Selected/total granules per index step of the first read in an `EXPLAIN indexes = 1`."""
    steps: dict[str, tuple[int, int]] = {}
    current = None
    for line in plan.splitlines():
        text = line.strip()
        if text in ("MinMax", "Partition", "PrimaryKey", "Skip"):
            current = text
        elif current and (m := re.match(r"Granules: (\d+)/(\d+)", text)):
            steps.setdefault(current, (int(m[1]), int(m[2])))
            current = None
    return steps


def test_event_ts_skip_index_prunes_the_window(ch: ClickHouseResource) -> None:
    ch.create_schema()
    db = ch.database
    # 40 days of one project's observations, ingested in time order
    ch.get_client().command(
        f"INSERT INTO `{db}`.observations "
        "(id, trace_id, project_id, type, start_time, name, created_at, updated_at, event_ts, is_deleted) "
        "SELECT concat('o', toString(number)), 't', 'p1', 'GENERATION', ts, 'n', ts, ts, ts, 0 "
        "FROM (SELECT number, toDateTime64('2025-01-01 00:00:00', 3, 'UTC') + toIntervalSecond(number * 20) AS ts "
        "FROM numbers(172800))"
    )
    ch.get_client().command(f"OPTIMIZE TABLE `{db}`.observations FINAL")
    sql = f"SELECT count() FROM `{db}`.observations WHERE {latest_in_window_filter(SOURCES['observations'], db, 'incremental')}"
    params = {"project_ids": ["p1"], "window_start": "2025-01-20 00:00:00", "window_end": "2025-01-21 00:00:00"}
    plan = "\n".join(row[0] for row in ch.get_client().query("EXPLAIN indexes = 1 " + sql, parameters=params).result_rows)
    steps = _granules(plan)
    assert "event_ts_minmax" in plan
    selected, total = steps["Skip"]
    assert total == steps["PrimaryKey"][0]
    # one day of forty: a few granules, not the table
    assert selected * 10 < total, plan
    assert ch.scalar(sql, params) == 4320


def test_latest_version_lookup_is_bounded_by_the_windows_own_records(ch: ClickHouseResource) -> None:
    """Exporting the oldest day of a long history groups only that day's records, not every
    record ingested since (the cost of a backfill does not grow with what came after it)."""
    ch.create_schema()
    db = ch.database
    ch.get_client().command(
        f"INSERT INTO `{db}`.traces (id, timestamp, name, project_id, created_at, updated_at, event_ts, is_deleted) "
        "SELECT concat('t', toString(number)), ts, 'n', 'p1', ts, ts, ts, 0 "
        "FROM (SELECT number, toDateTime64('2025-01-01 00:00:00', 3, 'UTC') + toIntervalSecond(number * 60) AS ts "
        "FROM numbers(57600))"  # 40 days, one trace a minute
    )
    # one trace of the first day updated on the last
    ch.get_client().command(
        f"INSERT INTO `{db}`.traces (id, timestamp, name, project_id, created_at, updated_at, event_ts, is_deleted) "
        "VALUES ('t5', '2025-01-01 00:05:00', 'n2', 'p1', '2025-01-01 00:05:00', '2025-02-09 12:00:00', '2025-02-09 12:00:00', 0)"
    )
    where = latest_in_window_filter(SOURCES["traces"], db, "incremental")
    lookup = where.split(" IN (", 1)[1].rsplit(")", 1)[0]  # the latest-version subquery
    params = {"project_ids": ["p1"], "window_start": "2025-01-01 00:00:00", "window_end": "2025-01-02 00:00:00"}
    assert lookup.startswith("SELECT project_id, id, max(event_ts)")
    assert ch.scalar(f"SELECT count() FROM ({lookup})", params) == 1440  # the day's records, not 57,600
    assert ch.scalar(f"SELECT count() FROM `{db}`.traces WHERE {where}", params) == 1439  # t5 belongs to the 9th of February
    last = {"project_ids": ["p1"], "window_start": "2025-02-09 00:00:00", "window_end": "2025-02-10 00:00:00"}
    assert ch.scalar(f"SELECT countIf(id = 't5') FROM `{db}`.traces WHERE {where}", last) == 1
