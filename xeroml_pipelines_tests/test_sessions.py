"""Sessions: derived from traces, aggregated over a session's live traces at export time."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from dagster import AssetKey, materialize

from xeroml_pipelines.defs.location import build_definitions
from xeroml_pipelines_tests.factories import insert, observation, trace
from xeroml_pipelines_tests.support import Exporter, by_id, documentation


@pytest.fixture
def conversation(exporter: Exporter) -> Exporter:
    insert(
        exporter.ch,
        "traces",
        [
            # s1: three turns over two days, one of them deleted later
            trace(
                "t1",
                "2025-01-15 10:00:01",
                timestamp="2025-01-15 10:00",
                session_id="s1",
                user_id="u1",
                environment="production",
                tags=["a"],
            ),
            trace(
                "t2",
                "2025-01-15 10:05:01",
                timestamp="2025-01-15 10:05",
                session_id="s1",
                user_id="u2",
                environment="staging",
                tags=["b", "a"],
            ),
            trace(
                "t3",
                "2025-01-16 09:00:01",
                timestamp="2025-01-16 09:00",
                session_id="s1",
                user_id="u1",
                environment="production",
                tags=[],
            ),
            trace("t3", "2025-01-17 09:00:00", timestamp="2025-01-16 09:00", session_id="s1", is_deleted=1),
            # s2: its only trace is deleted -> a session tombstone
            trace("t4", "2025-01-15 11:00", session_id="s2"),
            trace("t4", "2025-01-15 12:00", timestamp="2025-01-15 11:00", session_id="s2", is_deleted=1),
            # no session at all
            trace("t5", "2025-01-15 13:00", session_id=None),
            trace("t6", "2025-01-15 13:00", session_id=""),
            # the same session id in another project: never merged into ours
            trace("x1", "2025-01-15 10:00", session_id="s1", project_id="p2", user_id="intruder", environment="other"),
        ],
    )
    insert(
        exporter.ch,
        "observations",
        [
            observation("o1", "t1", "2025-01-15 10:00:02", total_cost=0.5, usage_details={"input": 10, "output": 5}),
            observation("o2", "t2", "2025-01-15 10:05:02", total_cost=0.25, usage_details={"input": 3}),
            observation(
                "o2", "t2", "2025-01-16 08:00:00", start_time="2025-01-15 10:05:02", total_cost=1.25, usage_details={"input": 4}
            ),
            observation(
                "o3", "t3", "2025-01-16 09:00:02", total_cost=100.0, usage_details={"input": 1000}
            ),  # its trace is deleted
            observation("o4", "t1", "2025-01-15 10:00:03", total_cost=9.0, usage_details={"input": 9}),
            observation("o4", "t1", "2025-01-15 10:30:00", start_time="2025-01-15 10:00:03", is_deleted=1),
            observation("ox", "x1", "2025-01-15 10:00:02", project_id="p2", total_cost=1000.0),
        ],
    )
    return exporter


def test_session_aggregates_its_live_traces_across_days(conversation: Exporter) -> None:
    conversation.run("2025-01-17", tables=("traces", "sessions"))
    (s1,) = conversation.lines("sessions", "2025-01-17")
    assert s1["id"] == "s1" and s1["project_id"] == "p1" and s1["is_deleted"] is False
    assert s1["trace_count"] == 2
    assert s1["trace_ids"] == ["t1", "t2"]
    assert s1["user_ids"] == ["u1", "u2"]
    assert s1["environments"] == ["production", "staging"]
    assert s1["tags"] == ["a", "b"]
    assert s1["first_trace_at"] == "2025-01-15T10:00:00.000Z"
    assert s1["last_trace_at"] == "2025-01-15T10:05:00.000Z"
    # latest live observation versions of live traces: o1 0.5 + o2 (updated) 1.25; o3's trace and o4 are deleted
    assert s1["total_cost"] == pytest.approx(1.75)
    assert s1["usage_details"] == {"input": 14, "output": 5}
    assert s1["event_ts"] == "2025-01-17T09:00:00.000Z"


def test_sessions_partition_follows_the_traces_partition(conversation: Exporter) -> None:
    conversation.run("2025-01-15", tables=("traces", "sessions"))
    sessions = by_id(conversation.lines("sessions", "2025-01-15"))
    traces = conversation.lines("traces", "2025-01-15")
    assert set(sessions) == {t["session_id"] for t in traces if t["session_id"]} | {"s2"} == {"s1", "s2"}
    # aggregated over all its traces as they are at export time: t3 is already deleted
    assert sessions["s1"]["trace_count"] == 2
    conversation.run("2025-01-16", tables=("traces", "sessions"))
    # no trace's latest version is on the 16th (t3's is on the 17th), but o2's cost changed then:
    # s1's line follows it, with the new cost
    (s1,) = conversation.lines("sessions", "2025-01-16")
    assert s1["id"] == "s1" and s1["total_cost"] == pytest.approx(1.75)


def test_session_with_all_traces_deleted_is_a_tombstone(conversation: Exporter) -> None:
    conversation.run("2025-01-15", tables=("traces", "sessions"))
    s2 = by_id(conversation.lines("sessions", "2025-01-15"))["s2"]
    assert s2["is_deleted"] is True
    assert s2["project_id"] == "p1"
    assert s2["trace_ids"] is None and s2["user_ids"] is None and s2["total_cost"] is None
    assert s2["event_ts"] == "2025-01-15T12:00:00.000Z"
    assert conversation.manifest("sessions", "2025-01-15")["tombstones"] == 1


def test_session_id_reused_by_another_project_is_not_merged(conversation: Exporter) -> None:
    conversation.run("2025-01-15", tables=("traces", "sessions"))
    s1 = by_id(conversation.lines("sessions", "2025-01-15"))["s1"]
    assert "intruder" not in s1["user_ids"] and "x1" not in s1["trace_ids"] and "other" not in s1["environments"]
    assert s1["total_cost"] < 1000


def test_trace_moved_to_another_session_counts_where_it_is_now(exporter: Exporter) -> None:
    insert(
        exporter.ch,
        "traces",
        [
            trace("t1", "2025-01-15 10:00", session_id="old"),
            trace("t2", "2025-01-15 10:01", session_id="old"),
            trace("t1", "2025-01-15 11:00", timestamp="2025-01-15 10:00", session_id="new"),
        ],
    )
    exporter.run("2025-01-15", tables=("traces", "sessions"))
    sessions = by_id(exporter.lines("sessions", "2025-01-15"))
    assert sessions["old"]["trace_ids"] == ["t2"]
    assert sessions["new"]["trace_ids"] == ["t1"]


def test_sessions_snapshot_mode_uses_trace_event_time(conversation: Exporter) -> None:
    conversation.run("2025-01-16", tables=("traces", "sessions"), mode="snapshot")
    # t3's timestamp is on the 16th (it is a tombstone now): s1 has a trace in that partition
    sessions = by_id(conversation.lines("sessions", "2025-01-16"))
    assert set(sessions) == {"s1"} and sessions["s1"]["trace_count"] == 2


def test_a_session_appears_in_each_partition_its_traces_changed_and_readme_reads_the_current_one(
    conversation: Exporter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unlike traces, observations and scores, a session is re-emitted in every partition in which
    one of its traces or their observations changed; README's one-line DuckDB query over the files gives exactly what
    the warehouse MERGE keeps."""
    wh = tmp_path / "w.duckdb"
    defs = build_definitions(conversation.config(warehouse={"type": "duckdb", "path": str(wh)}))
    tables = ("traces", "observations", "sessions")
    assets = [defs.get_assets_def(AssetKey(["exp", t])) for t in tables] + [
        defs.get_assets_def(AssetKey(["exp", "warehouse", "sessions"]))
    ]
    days = ("2025-01-15", "2025-01-16", "2025-01-17")
    for day in days:
        assert materialize(assets, partition_key=day, resources=defs.resources).success
    emitted = [line["id"] for day in days for line in conversation.lines("sessions", day)]
    # on the 15th, on the 16th when o2's cost changed, and on the 17th when t3 was deleted
    assert emitted.count("s1") == 3

    readme = documentation()
    query = readme.split("-- DuckDB, the current sessions from the files\n", 1)[1].split("```", 1)[0].strip()
    query = query.replace("xeroml-export/", f"{conversation.out.name}/")  # README runs it where `xeroml demo` writes
    monkeypatch.chdir(conversation.out.parent)
    con = duckdb.connect()
    current = con.execute(f"SELECT id, trace_count, event_ts FROM ({query.rstrip(';')}) ORDER BY id")
    from_files = current.fetchall()
    with duckdb.connect(str(wh)) as loaded:
        merged = loaded.execute("SELECT id, trace_count, event_ts FROM xeroml_sessions ORDER BY id").fetchall()
    assert [(i, n) for i, n, _ in from_files] == [("s1", 2)]  # s2 is a tombstone: neither shows it
    assert [(i, n, str(t)[:19]) for i, n, t in from_files] == [(i, n, str(t)[:19]) for i, n, t in merged]
