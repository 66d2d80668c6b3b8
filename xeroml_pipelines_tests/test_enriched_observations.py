"""`enriched_observations` (issue 21): each observation with its metrics and its trace's latest
attributes; its version is the greater of the observation's and the trace's, so a trace that
changes later re-emits its observations in that window; a deleted trace or observation gives a
tombstone; the late-data sensor follows both tables; Parquet, hive layout, field selection,
manifests and verify cover it; README's DuckDB query over its files runs verbatim."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, DagsterInstance, materialize

from xeroml_pipelines.defs.location import build_definitions
from xeroml_pipelines.export.layout import Layout
from xeroml_pipelines.export.verify import verify
from xeroml_pipelines.tables import DEFAULT_TABLES, TABLES
from xeroml_pipelines_tests.factories import insert, observation, trace
from xeroml_pipelines_tests.support import Exporter, SensorTicks, documentation

REPO = Path(__file__).resolve().parents[1]
TABLE = "enriched_observations"
D, D1 = "2025-01-15", "2025-01-16"
TRACE_FIELDS = ("trace_name", "user_id", "session_id", "tags", "release", "trace_version", "trace_metadata")


def _seed(exporter: Exporter) -> None:
    insert(
        exporter.ch,
        "traces",
        [
            trace("T1", f"{D} 10:00", name="chat", user_id=None, session_id="S", tags=["a"], release="r1", version="v1"),
            trace("T2", f"{D} 11:00"),
            trace("T2", f"{D} 13:00", timestamp=f"{D} 11:00", is_deleted=1),  # deleted: its observations go too
        ],
    )
    insert(
        exporter.ch,
        "observations",
        [
            observation(
                "O1",
                "T1",
                f"{D} 10:01",
                end_time=f"{D} 10:01:02.500",
                completion_start_time=f"{D} 10:01:00.400",
                total_cost=0.25,
                usage_details={"input": 100, "output": 20},
                version="model-v2",
                metadata={"step": "1"},
            ),
            observation("O2", "T1", f"{D} 10:02"),
            observation("O2", "T1", f"{D} 12:00", start_time=f"{D} 10:02", is_deleted=1),
            observation("O3", "T2", f"{D} 11:01", total_cost=9.0),
            observation("O4", "no-such-trace", f"{D} 14:00", total_cost=1.0),
        ],
    )


def test_lines_carry_the_latest_trace_and_follow_it(exporter: Exporter) -> None:
    _seed(exporter)
    exporter.run(D, tables=(TABLE,))
    lines = {line["id"]: line for line in exporter.lines(TABLE, D)}
    assert list(lines) == ["O1", "O2", "O3", "O4"]  # observations' file order
    o1 = lines["O1"]
    assert list(o1) == list(TABLES["observations"].column_names) + list(TRACE_FIELDS)
    assert {k: o1[k] for k in TRACE_FIELDS} == {
        "trace_name": "chat",
        "user_id": None,
        "session_id": "S",
        "tags": ["a"],
        "release": "r1",
        "trace_version": "v1",
        "trace_metadata": {"k": "v"},
    }
    # the observation's own version and metadata keep their names; its metrics are computed
    assert (o1["version"], o1["metadata"], o1["latency_ms"], o1["time_to_first_token_ms"]) == (
        "model-v2",
        {"step": "1"},
        2500,
        400,
    )
    assert o1["event_ts"] == f"{D}T10:01:00.000Z" and o1["is_deleted"] is False
    # a deleted observation, and an observation of a deleted trace: tombstones, content nulled
    for gone, version in (("O2", f"{D}T12:00:00.000Z"), ("O3", f"{D}T13:00:00.000Z")):
        assert lines[gone]["is_deleted"] is True and lines[gone]["event_ts"] == version
        assert lines[gone]["total_cost"] is None and lines[gone]["user_id"] is None and lines[gone]["trace_id"] is None
    # a trace not (yet) stored: null attributes, not a tombstone
    assert lines["O4"]["is_deleted"] is False and lines["O4"]["trace_name"] is None and lines["O4"]["tags"] == []
    assert exporter.manifest(TABLE, D)["rows"] == 4 and exporter.manifest(TABLE, D)["tombstones"] == 2

    # the trace gets a user id the next day: its observations are re-emitted there, with it
    insert(exporter.ch, "traces", [trace("T1", f"{D1} 09:00", timestamp=f"{D} 10:00", user_id="u7", session_id="S")])
    exporter.run(D1, tables=(TABLE,))
    again = {line["id"]: line for line in exporter.lines(TABLE, D1)}
    assert list(again) == ["O1", "O2"]  # O2's tombstone too: its version is now the trace's
    assert again["O1"]["user_id"] == "u7" and again["O1"]["event_ts"] == f"{D1}T09:00:00.000Z"
    assert again["O1"]["total_cost"] == 0.25 and again["O1"]["session_id"] == "S"
    assert again["O2"]["is_deleted"] is True and again["O2"]["event_ts"] == f"{D1}T09:00:00.000Z"
    # re-running D now leaves T1's observations out: their latest versions are in D1 (the union holds each once)
    exporter.run(D, tables=(TABLE,))
    assert [line["id"] for line in exporter.lines(TABLE, D)] == ["O3", "O4"]


def test_snapshot_mode_files_by_start_time_with_the_latest_trace(exporter: Exporter) -> None:
    _seed(exporter)
    insert(exporter.ch, "traces", [trace("T1", f"{D1} 09:00", timestamp=f"{D} 10:00", user_id="u7", session_id="S")])
    exporter.run(D, tables=(TABLE,), mode="snapshot")
    lines = {line["id"]: line for line in exporter.lines(TABLE, D)}
    assert list(lines) == ["O1", "O2", "O3", "O4"]
    assert lines["O1"]["user_id"] == "u7" and lines["O1"]["event_ts"] == f"{D1}T09:00:00.000Z"
    exporter.run(D1, tables=(TABLE,), mode="snapshot")
    assert exporter.lines(TABLE, D1) == []


def test_parquet_hive_field_selection_manifest_and_verify(exporter: Exporter) -> None:
    _seed(exporter)
    exporter.run(D, tables=(TABLE,))
    json_lines = {line["id"]: line for line in exporter.lines(TABLE, D)}
    exclude = {TABLE: ["input", "output", "trace_metadata", "latency_ms"]}
    exporter.run(D, tables=(TABLE,), format="parquet", layout="hive", exclude=exclude)
    path = exporter.out / TABLE / f"date={D}" / "data.parquet"
    table = pq.read_table(path)
    assert not {"input", "output", "trace_metadata", "latency_ms"} & set(table.schema.names)
    assert str(table.schema.field("tags").type) == "list<element: string>"
    assert str(table.schema.field("time_to_first_token_ms").type) == "int64"
    for row in table.to_pylist():
        expected = json_lines[row["id"]]
        assert (row["user_id"], row["trace_name"], row["is_deleted"]) == (
            expected["user_id"],
            expected["trace_name"],
            expected["is_deleted"],
        )
    manifest = exporter.manifest(TABLE, D)
    assert manifest["object_key"] == f"{TABLE}/date={D}/data.parquet" and manifest["rows"] == 4
    assert sorted(manifest["excluded"]) == sorted(exclude[TABLE])
    export = exporter.config(tables=(TABLE,)).exports[0]
    with export.destination.process_config_and_initialize_cm() as destination:
        report = verify(destination, Layout(prefix=destination.prefix, style="hive"), TABLE, deep=True)
    assert report.ok and report.manifests == 1 and report.objects == 1, report.problems


def test_the_late_data_sensor_follows_traces_and_observations(exporter: Exporter) -> None:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day = today - timedelta(days=2)
    key = day.date().isoformat()

    def at(hours: float) -> str:
        return (day + timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M:%S")

    start = (today - timedelta(days=5)).date().isoformat()
    defs = build_definitions(exporter.config(tables=(TABLE,), start_date=start, recheck_days=4))
    insert(exporter.ch, "traces", [trace("T", at(10), user_id=None)])
    insert(exporter.ch, "observations", [observation("O", "T", at(10.1))])
    assets = [defs.get_assets_def(AssetKey(["exp", TABLE]))]
    with DagsterInstance.ephemeral() as instance:
        materialize(assets, partition_key=key, resources=defs.resources, instance=instance)
        tick = SensorTicks(defs, "exp_late_data", instance)
        assert tick().run_requests == []
        assert tick().run_requests == []
        for table, row in (
            ("traces", trace("T", at(11), timestamp=at(10), user_id="late-user")),  # a trace change, late, inside the day
            ("observations", observation("O", "T", at(12), start_time=at(10.1), total_cost=3.0)),  # then an observation's
        ):
            insert(exporter.ch, table, [row])
            (request,) = tick().run_requests
            assert request.partition_key == key and {k.path[-1] for k in request.asset_selection} == {TABLE}
            materialize(assets, partition_key=key, resources=defs.resources, instance=instance)
            assert tick().run_requests == []
    (line,) = exporter.lines(TABLE, key)
    assert (line["user_id"], line["total_cost"], line["event_ts"][11:19]) == ("late-user", 3.0, "12:00:00")


def test_opt_in_and_registered(exporter: Exporter) -> None:
    assert TABLE in TABLES and TABLE not in DEFAULT_TABLES
    assert exporter.config().exports[0].tables == DEFAULT_TABLES == ("traces", "observations", "scores", "sessions")
    assert list(TABLES[TABLE].model.model_fields) == list(TABLES[TABLE].column_names)


def _readme_queries() -> list[str]:
    readme = documentation()
    block = readme.split("-- DuckDB, cost, tokens and latency from enriched_observations\n", 1)[1].split("```", 1)[0]
    return [q.strip() for q in block.split(";") if q.strip()]


def test_readme_query_per_trace_and_per_user(exporter: Exporter, monkeypatch: pytest.MonkeyPatch) -> None:
    _seed(exporter)
    insert(
        exporter.ch,
        "observations",
        [observation("O5", "T1", f"{D} 10:03", end_time=f"{D} 10:03:01", total_cost=0.5, usage_details={"input": 10})],
    )
    exporter.run(D, tables=(TABLE,))
    insert(exporter.ch, "traces", [trace("T1", f"{D1} 09:00", timestamp=f"{D} 10:00", user_id="u7", session_id="S")])
    exporter.run(D1, tables=(TABLE,))  # T1's observations again, now with u7; D still holds their older lines
    per_trace, per_user = _readme_queries()
    monkeypatch.chdir(exporter.out.parent)  # README runs them where `xeroml demo` writes
    con = duckdb.connect()
    traces = con.execute(per_trace.replace("xeroml-export/", f"{exporter.out.name}/")).fetchall()
    users = con.execute(per_user.replace("xeroml-export/", f"{exporter.out.name}/")).fetchall()
    # T1: O1 (0.25; 100 in, 20 out; 2.5 s, first token at 0.4 s) and O5 (0.5; 10 in; 1 s), from
    # 10:01:00 to 10:03:01, attributed to u7 (T1's latest version); T2 is deleted; O4's trace unknown
    assert traces == [
        ("no-such-trace", None, None, 1.0, None, None, None),
        ("T1", "chat", "u7", 0.75, 110, 20, 121_000),
    ]
    assert users == [(None, 1, 1.0, None, None, None, None), ("u7", 1, 0.75, 110, 20, 1750.0, 400.0)]


def test_invalid_utf8_in_trace_attributes_is_replaced_and_counted(exporter: Exporter) -> None:
    insert(
        exporter.ch,
        "traces",
        [trace("T", f"{D} 10:00", user_id=b"u\xff", tags=[b"t\xfe", b"ok"], metadata={b"k\xff": b"v", b"plain": b"\xfe"})],
    )
    insert(exporter.ch, "observations", [observation("O", "T", f"{D} 10:01")])
    exporter.run(D, tables=(TABLE,))
    (line,) = exporter.lines(TABLE, D)
    assert line["user_id"] == "u\ufffd" and line["tags"] == ["t\ufffd", "ok"]
    assert line["trace_metadata"] == {"k\ufffd": "v", "plain": "\ufffd"}
    assert exporter.manifest(TABLE, D)["invalid_utf8"] == 4
