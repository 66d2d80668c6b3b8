"""Over the demo's realistic data (updates, late arrivals, deletes, cascades, other tenants), in
both modes: the union of all `enriched_observations` partitions holds every observation exactly
once, in the window of its version (the greater of its own and its trace's), field by field as
computed independently here from the two tables' latest versions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines.demo.generate import DemoSpec, generate
from xeroml_pipelines.sql.source_tables import OBSERVATIONS, TRACES
from xeroml_pipelines_tests.support import Exporter, latest_versions
from xeroml_pipelines_tests.test_union_property import DAYS, PARTITIONS, START, _json_value

TABLE = "enriched_observations"
ATTRIBUTES = {
    "trace_name": "name",
    "user_id": "user_id",
    "session_id": "session_id",
    "tags": "tags",
    "release": "release",
    "trace_version": "version",
    "trace_metadata": "metadata",
}
EMPTY = {"tags": [], "trace_metadata": {}}  # without a trace: empty, not null (a ClickHouse Array or Map)


@pytest.fixture(scope="module")
def demo(chdb_url: str) -> ClickHouseResource:
    ch = ClickHouseResource(url=chdb_url, database=f"e_{uuid.uuid4().hex[:12]}")
    generate(ch, DemoSpec(start=START, days=DAYS, traces_per_day=200, seed=11))
    yield ch
    ch.get_client().command(f"DROP DATABASE `{ch.database}`")


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def _expected(ch: ClickHouseResource) -> dict[str, tuple[datetime, datetime, dict]]:
    """Per observation id: (its version: the time an incremental window is on, its own latest
    version's event_ts, its line)."""
    names = [c.name for c in OBSERVATIONS.columns]
    observations = latest_versions(ch, "observations", names)
    traces = latest_versions(ch, "traces", [c.name for c in TRACES.columns])
    keep = set(OBSERVATIONS.tombstone_columns)
    out = {}
    for id_, o in observations.items():
        t = traces.get(o["trace_id"])
        version = max(o["event_ts"], t["event_ts"]) if t else o["event_ts"]
        deleted = bool(o["is_deleted"] or (t and t["is_deleted"]))
        line = {n: None if deleted and n not in keep else _json_value(o[n]) for n in names}
        line["event_ts"], line["is_deleted"] = _json_value(version), deleted
        for metric, later in (("latency_ms", "end_time"), ("time_to_first_token_ms", "completion_start_time")):
            alive = not deleted and o[later] is not None
            line[metric] = (o[later] - o["start_time"]) // timedelta(milliseconds=1) if alive else None
        for name, column in ATTRIBUTES.items():
            line[name] = None if deleted else _json_value(t[column]) if t else EMPTY.get(name)
        out[id_] = (_utc(version), _utc(o["event_ts"]), line)
    return out


@pytest.mark.parametrize("mode", ["incremental", "snapshot"])
def test_union_holds_each_enriched_observation_once_field_by_field(demo: ClickHouseResource, tmp_path, mode: str) -> None:
    exporter = Exporter(demo, tmp_path / "export", project_id="demo")
    for day in PARTITIONS:
        exporter.run(day, tables=(TABLE,), mode=mode)
    expected = _expected(demo)
    seen: dict[str, dict] = {}
    for day in PARTITIONS:
        start = datetime.fromisoformat(day).replace(tzinfo=UTC)
        for line in exporter.lines(TABLE, day):
            assert line["id"] not in seen, f"{line['id']} exported twice"
            version, _, wanted = expected[line["id"]]
            window_time = version if mode == "incremental" else datetime.fromisoformat(line["start_time"])
            assert start <= window_time < start + timedelta(days=1), "line in the wrong partition"
            assert line == wanted and list(line) == list(wanted)
            seen[line["id"]] = line
    assert set(seen) == set(expected)
    # the data exercises what the table is about: trace attributes, tombstones, traces newer than their observations
    lines = list(seen.values())
    assert any(line["user_id"] for line in lines) and any(line["is_deleted"] for line in lines)
    assert any(version > own for version, own, _ in expected.values())
