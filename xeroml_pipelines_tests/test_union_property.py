"""Over a realistic data set (updates, late arrivals, deletes, other tenants): the union of all
partitions holds every record's latest version exactly once, computed independently here."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from xeroml_pipelines.demo.generate import DemoSpec, generate
from xeroml_pipelines.sql.source_tables import SOURCES
from xeroml_pipelines_tests.support import Exporter, latest_versions

START = date(2025, 1, 13)
DAYS = 3
# updates and late arrivals land up to three days after the last day
PARTITIONS = [(START + timedelta(days=i)).isoformat() for i in range(DAYS + 4)]


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _latest(exporter: Exporter, table: str, columns: str) -> dict[str, tuple]:
    """Latest version per id of project `demo`, in Python: greatest event_ts, a delete wins a tie."""
    rows = (
        exporter.ch.get_client()
        .query(f"SELECT id, event_ts, is_deleted, {columns} FROM `{exporter.ch.database}`.{table} WHERE project_id = 'demo'")
        .result_rows
    )
    latest: dict[str, tuple] = {}
    for row in rows:
        best = latest.get(row[0])
        if best is None or (row[1], row[2]) > (best[1], best[2]):
            latest[row[0]] = row
    return latest


@pytest.fixture(scope="module")
def exported(chdb_url: str, tmp_path_factory: pytest.TempPathFactory) -> Exporter:
    import uuid

    from xeroml_pipelines.clickhouse.resource import ClickHouseResource

    ch = ClickHouseResource(url=chdb_url, database=f"u_{uuid.uuid4().hex[:12]}")
    generate(ch, DemoSpec(start=START, days=DAYS, traces_per_day=300, seed=7))
    exporter = Exporter(ch, tmp_path_factory.mktemp("union") / "export", project_id="demo")
    for day in PARTITIONS:
        exporter.run(day)
    yield exporter
    ch.get_client().command(f"DROP DATABASE `{ch.database}`")


@pytest.mark.parametrize("table,column", [("traces", "name"), ("observations", "end_time"), ("scores", "value")])
def test_union_holds_each_latest_version_exactly_once(exported: Exporter, table: str, column: str) -> None:
    expected = _latest(exported, table, column)
    seen: dict[str, dict] = {}
    for day in PARTITIONS:
        start = datetime.fromisoformat(day).replace(tzinfo=UTC)
        for line in exported.lines(table, day):
            assert line["id"] not in seen, f"{line['id']} exported twice"
            assert line["project_id"] == "demo"
            event_ts = datetime.fromisoformat(line["event_ts"].replace("Z", "+00:00"))
            assert start <= event_ts < start + timedelta(days=1), "record in the wrong partition"
            seen[line["id"]] = line
    assert set(seen) == set(expected)
    for id_, row in expected.items():
        line = seen[id_]
        assert line["event_ts"] == _iso(row[1])
        assert line["is_deleted"] is bool(row[2])
        if not row[2]:
            value = row[3]
            assert line[column] == (_iso(value) if isinstance(value, datetime) else value)
    # the data set exercises what the contract is about
    deleted = sum(1 for r in expected.values() if r[2])
    assert deleted > 0 and deleted < len(expected)


def test_late_and_updated_records_are_present(exported: Exporter) -> None:
    lines = [line for day in PARTITIONS for line in exported.lines("traces", day)]
    late = [t for t in lines if not t["is_deleted"] and t["event_ts"][:10] != t["timestamp"][:10]]
    assert late, "expected late arrivals or updates on a later day"
    assert any("reviewed" in (t["tags"] or []) for t in lines), "expected updated traces"


def test_sessions_reflect_current_state_of_their_traces(exported: Exporter) -> None:
    traces = _latest(exported, "traces", "session_id")
    live_by_session: dict[str, set[str]] = defaultdict(set)
    all_sessions = set()
    for id_, row in traces.items():
        if row[3]:
            all_sessions.add(row[3])
            if not row[2]:
                live_by_session[row[3]].add(id_)
    exported_sessions = set()
    for day in PARTITIONS:
        for s in exported.lines("sessions", day):
            exported_sessions.add(s["id"])
            if s["is_deleted"]:
                assert not live_by_session[s["id"]]
            else:
                assert set(s["trace_ids"]) == live_by_session[s["id"]]
                assert s["trace_count"] == len(live_by_session[s["id"]])
    assert exported_sessions == all_sessions


def _json_value(value: object) -> object:
    """The file's documented JSON shape of a value, built in Python from ClickHouse's own types."""
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


@pytest.mark.parametrize("table", ["traces", "observations", "scores"])
def test_every_line_is_the_latest_version_field_by_field(exported: Exporter, table: str) -> None:
    """ClickHouse writes the lines (formatRow); an independent Python rendering of the same
    versions must match every field of every line, tombstones included."""
    source = SOURCES[table]
    names = [c.name for c in source.columns]
    latest = latest_versions(exported.ch, table, names)
    lines = {line["id"]: line for day in PARTITIONS for line in exported.lines(table, day)}
    assert set(lines) == set(latest)
    keep = set(source.tombstone_columns)
    for id_, row in latest.items():
        expected = {
            n: (bool(row[n]) if n == "is_deleted" else None if row["is_deleted"] and n not in keep else _json_value(row[n]))
            for n in names
        }
        if table == "observations":  # the derived metrics, computed here apart: whole milliseconds
            for metric, later in (("latency_ms", "end_time"), ("time_to_first_token_ms", "completion_start_time")):
                alive = not row["is_deleted"] and row[later] is not None
                expected[metric] = (row[later] - row["start_time"]) // timedelta(milliseconds=1) if alive else None
        assert lines[id_] == expected
        assert list(lines[id_]) == list(expected), "fields in the table's column order"
