"""The export contract (README, "Export semantics"), rule by rule, against real chDB."""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from datetime import UTC

import pytest

from xeroml_pipelines.clickhouse.resource import ClickHouseResource
from xeroml_pipelines_tests.factories import insert, observation, score, trace
from xeroml_pipelines_tests.support import Exporter, by_id, read_bytes


def test_partition_holds_latest_version_by_ingestion_time(exporter: Exporter) -> None:
    insert(
        exporter.ch,
        "traces",
        [
            trace("a", "2025-01-15 10:00", name="v1"),
            trace("a", "2025-01-15 18:00", timestamp="2025-01-15 10:00", name="v2"),
            trace("b", "2025-01-15 23:59:59.999", name="b"),
        ],
    )
    exporter.run("2025-01-15", tables=("traces",))
    lines = by_id(exporter.lines("traces", "2025-01-15"))
    assert set(lines) == {"a", "b"}
    assert lines["a"]["name"] == "v2"
    assert lines["a"]["event_ts"] == "2025-01-15T18:00:00.000Z"


def test_update_ingested_later_moves_record_to_later_partition(exporter: Exporter) -> None:
    insert(
        exporter.ch,
        "traces",
        [
            trace("a", "2025-01-15 10:00", name="v1"),
            trace("a", "2025-01-17 09:00", timestamp="2025-01-15 10:00", name="v2"),
            trace("b", "2025-01-15 11:00"),
        ],
    )
    for day in ("2025-01-15", "2025-01-16", "2025-01-17"):
        exporter.run(day, tables=("traces",))
    assert set(by_id(exporter.lines("traces", "2025-01-15"))) == {"b"}
    assert exporter.lines("traces", "2025-01-16") == []
    later = by_id(exporter.lines("traces", "2025-01-17"))
    assert later["a"]["name"] == "v2"
    # the record keeps its own event time; only its version decides the partition
    assert later["a"]["timestamp"] == "2025-01-15T10:00:00.000Z"


def test_update_arriving_after_export_is_exported_when_its_partition_runs(exporter: Exporter) -> None:
    insert(exporter.ch, "traces", [trace("a", "2025-01-15 10:00", name="v1")])
    exporter.run("2025-01-15", tables=("traces",))
    assert by_id(exporter.lines("traces", "2025-01-15"))["a"]["name"] == "v1"
    insert(exporter.ch, "traces", [trace("a", "2025-01-16 10:00", timestamp="2025-01-15 10:00", name="v2")])
    exporter.run("2025-01-16", tables=("traces",))
    assert by_id(exporter.lines("traces", "2025-01-16"))["a"]["name"] == "v2"


def test_late_arrival_is_exported_in_the_partition_of_its_ingestion(exporter: Exporter) -> None:
    insert(exporter.ch, "traces", [trace("late", "2025-01-18 03:00", timestamp="2025-01-12 08:00")])
    exporter.run("2025-01-12", tables=("traces",))
    exporter.run("2025-01-18", tables=("traces",))
    assert exporter.lines("traces", "2025-01-12") == []
    assert set(by_id(exporter.lines("traces", "2025-01-18"))) == {"late"}


def test_window_is_half_open(exporter: Exporter) -> None:
    insert(
        exporter.ch,
        "traces",
        [
            trace("start", "2025-01-15 00:00:00.000"),
            trace("end", "2025-01-16 00:00:00.000"),
            trace("last", "2025-01-15 23:59:59.999"),
        ],
    )
    exporter.run("2025-01-15", tables=("traces",))
    exporter.run("2025-01-16", tables=("traces",))
    assert set(by_id(exporter.lines("traces", "2025-01-15"))) == {"start", "last"}
    assert set(by_id(exporter.lines("traces", "2025-01-16"))) == {"end"}


def test_deleted_record_is_exported_as_tombstone_without_content(exporter: Exporter) -> None:
    insert(
        exporter.ch,
        "traces",
        [
            trace("gone", "2025-01-15 10:00", input="secret prompt", user_id="alice", tags=["x"]),
            trace("gone", "2025-01-15 12:00", timestamp="2025-01-15 10:00", input="secret prompt", user_id="alice", is_deleted=1),
            trace("live", "2025-01-15 11:00"),
        ],
    )
    exporter.run("2025-01-15", tables=("traces",))
    lines = by_id(exporter.lines("traces", "2025-01-15"))
    tomb = lines["gone"]
    assert tomb["is_deleted"] is True
    assert tomb["project_id"] == "p1"
    assert tomb["timestamp"] == "2025-01-15T10:00:00.000Z"
    assert tomb["event_ts"] == "2025-01-15T12:00:00.000Z"
    assert tomb["updated_at"] == "2025-01-15T12:00:00.000Z"
    assert tomb["input"] is None and tomb["user_id"] is None and tomb["tags"] is None and tomb["name"] is None
    assert b"secret prompt" not in exporter.path("traces", "2025-01-15").read_bytes()
    assert lines["live"]["is_deleted"] is False
    assert exporter.manifest("traces", "2025-01-15")["tombstones"] == 1


def test_tombstones_for_observations_and_scores(exporter: Exporter) -> None:
    insert(
        exporter.ch,
        "observations",
        [
            observation("o1", "t1", "2025-01-15 10:00", input="prompt"),
            observation("o1", "t1", "2025-01-15 11:00", start_time="2025-01-15 10:00", input="prompt", is_deleted=1),
        ],
    )
    insert(
        exporter.ch,
        "scores",
        [
            score("s1", "2025-01-15 10:00", comment="c"),
            score("s1", "2025-01-15 11:00", timestamp="2025-01-15 10:00", comment="c", is_deleted=1),
        ],
    )
    exporter.run("2025-01-15", tables=("observations", "scores"))
    (obs,) = exporter.lines("observations", "2025-01-15")
    assert obs["is_deleted"] is True and obs["input"] is None and obs["start_time"] == "2025-01-15T10:00:00.000Z"
    (sc,) = exporter.lines("scores", "2025-01-15")
    assert sc["is_deleted"] is True and sc["comment"] is None and sc["value"] is None


def test_delete_then_reinsert_exports_the_latest(exporter: Exporter) -> None:
    insert(
        exporter.ch,
        "traces",
        [
            trace("a", "2025-01-15 10:00", name="v1"),
            trace("a", "2025-01-15 11:00", timestamp="2025-01-15 10:00", is_deleted=1),
            trace("a", "2025-01-15 12:00", timestamp="2025-01-15 10:00", name="v3"),
        ],
    )
    exporter.run("2025-01-15", tables=("traces",))
    (line,) = exporter.lines("traces", "2025-01-15")
    assert line["name"] == "v3" and line["is_deleted"] is False


def test_one_line_per_record_even_with_duplicate_versions(exporter: Exporter) -> None:
    # The same version inserted twice (a retried insert), and a version whose event date
    # differs from an earlier one (different sort key, so ReplacingMergeTree keeps both).
    insert(
        exporter.ch,
        "traces",
        [
            trace("dup", "2025-01-15 10:00"),
            trace("dup", "2025-01-15 10:00"),
            trace("moved", "2025-01-15 09:00", timestamp="2025-01-10 09:00", name="old-date"),
            trace("moved", "2025-01-15 10:00", timestamp="2025-01-14 09:00", name="new-date"),
        ],
    )
    insert(exporter.ch, "traces", [trace("dup", "2025-01-15 10:00")])
    exporter.run("2025-01-15", tables=("traces",))
    lines = by_id(exporter.lines("traces", "2025-01-15"))
    assert set(lines) == {"dup", "moved"}
    assert lines["moved"]["name"] == "new-date"


def test_delete_wins_a_tie_on_event_ts(exporter: Exporter) -> None:
    insert(exporter.ch, "traces", [trace("a", "2025-01-15 10:00", is_deleted=1)])
    insert(exporter.ch, "traces", [trace("a", "2025-01-15 10:00")])
    exporter.run("2025-01-15", tables=("traces",))
    (line,) = exporter.lines("traces", "2025-01-15")
    assert line["is_deleted"] is True


_MAKERS = {
    "traces": lambda id, project, at, **kw: trace(id, at, timestamp="2025-01-15 10:00", project_id=project, **kw),
    "observations": lambda id, project, at, **kw: observation(
        id, "t", at, start_time="2025-01-15 10:00", project_id=project, **kw
    ),
    "scores": lambda id, project, at, **kw: score(id, at, timestamp="2025-01-15 10:00", project_id=project, **kw),
}


@pytest.mark.parametrize("table", ["traces", "observations", "scores"])
def test_other_projects_never_appear(exporter: Exporter, table: str) -> None:
    make = _MAKERS[table]
    insert(
        exporter.ch,
        table,
        [
            make("mine", "p1", "2025-01-15 10:00"),
            make("shared-id", "p1", "2025-01-15 10:00", environment="mine"),
            make("theirs", "p2", "2025-01-15 10:00"),
            # the same id in another project with a newer version must not shadow ours
            make("shared-id", "p2", "2025-01-15 11:00", environment="theirs"),
            make("prefix-trap", "p1-other", "2025-01-15 10:00"),
            make("case-trap", "P1", "2025-01-15 10:00"),
        ],
    )
    exporter.run("2025-01-15", tables=(table,))
    lines = by_id(exporter.lines(table, "2025-01-15"))
    assert set(lines) == {"mine", "shared-id"}
    assert {line["project_id"] for line in lines.values()} == {"p1"}
    assert lines["shared-id"]["environment"] == "mine"
    assert lines["shared-id"]["event_ts"] == "2025-01-15T10:00:00.000Z"


def test_snapshot_mode_partitions_by_event_time(exporter: Exporter) -> None:
    insert(
        exporter.ch,
        "traces",
        [
            trace("late", "2025-01-18 03:00", timestamp="2025-01-12 08:00"),
            trace("a", "2025-01-12 09:00", name="v1"),
            trace("a", "2025-01-13 09:00", timestamp="2025-01-12 09:00", name="v2"),
        ],
    )
    insert(exporter.ch, "observations", [observation("o", "late", "2025-01-18 03:00", start_time="2025-01-12 08:00")])
    for day in ("2025-01-12", "2025-01-13", "2025-01-18"):
        exporter.run(day, tables=("traces", "observations"), mode="snapshot")
    lines = by_id(exporter.lines("traces", "2025-01-12"))
    assert set(lines) == {"late", "a"} and lines["a"]["name"] == "v2"
    assert exporter.lines("traces", "2025-01-13") == [] and exporter.lines("traces", "2025-01-18") == []
    assert [o["id"] for o in exporter.lines("observations", "2025-01-12")] == ["o"]


def test_snapshot_mode_record_whose_event_time_moved_leaves_old_date(exporter: Exporter) -> None:
    insert(
        exporter.ch,
        "traces",
        [
            trace("a", "2025-01-12 09:00", timestamp="2025-01-12 09:00", name="v1"),
            trace("a", "2025-01-13 09:00", timestamp="2025-01-13 08:00", name="v2"),
        ],
    )
    exporter.run("2025-01-12", tables=("traces",), mode="snapshot")
    exporter.run("2025-01-13", tables=("traces",), mode="snapshot")
    assert exporter.lines("traces", "2025-01-12") == []
    assert [t["name"] for t in exporter.lines("traces", "2025-01-13")] == ["v2"]


def test_rerun_is_byte_identical(exporter: Exporter) -> None:
    rows = [
        trace(f"t{i:03d}", f"2025-01-15 {i % 24:02d}:{i % 60:02d}", timestamp=f"2025-01-{10 + i % 5} 08:00") for i in range(300)
    ]
    insert(exporter.ch, "traces", rows[:150])
    insert(exporter.ch, "traces", rows[150:])
    exporter.run("2025-01-15", tables=("traces",))
    first = exporter.path("traces", "2025-01-15").read_bytes()
    exporter.ch.get_client().command(f"OPTIMIZE TABLE `{exporter.ch.database}`.traces FINAL")
    exporter.run("2025-01-15", tables=("traces",))
    assert exporter.path("traces", "2025-01-15").read_bytes() == first
    assert len(first.splitlines()) == 300


def test_zero_row_partition_writes_only_a_manifest(exporter: Exporter) -> None:
    insert(exporter.ch, "traces", [trace("a", "2025-01-16 10:00")])
    result = exporter.run("2025-01-15", tables=("traces",))
    assert not (exporter.out / "traces").exists() or not any((exporter.out / "traces").iterdir())
    manifest = exporter.manifest("traces", "2025-01-15")
    assert manifest["rows"] == 0 and manifest["object_key"] is None and manifest["uri"] is None
    (mat,) = result.get_asset_materialization_events()
    assert mat.materialization.metadata["rows"].value == 0


def test_rerun_with_fewer_rows_removes_the_stale_file(exporter: Exporter) -> None:
    insert(exporter.ch, "traces", [trace("a", "2025-01-15 10:00")])
    exporter.run("2025-01-15", tables=("traces",))
    assert exporter.path("traces", "2025-01-15").exists()
    # the record is updated later: it now belongs to the 17th, and the 15th is empty
    insert(exporter.ch, "traces", [trace("a", "2025-01-17 10:00", timestamp="2025-01-15 10:00")])
    exporter.run("2025-01-15", tables=("traces",))
    assert not exporter.path("traces", "2025-01-15").exists()
    assert exporter.manifest("traces", "2025-01-15")["rows"] == 0


def test_manifest_describes_the_file(exporter: Exporter) -> None:
    insert(
        exporter.ch,
        "traces",
        [trace(f"t{i}", "2025-01-15 10:00") for i in range(10)] + [trace("d", "2025-01-15 11:00", is_deleted=1)],
    )
    result = exporter.run("2025-01-15", tables=("traces",))
    data = exporter.path("traces", "2025-01-15").read_bytes()
    m = exporter.manifest("traces", "2025-01-15")
    assert m["rows"] == 11 and m["tombstones"] == 1
    assert m["bytes"] == len(data) == m["uncompressed_bytes"]
    assert m["sha256"] == hashlib.sha256(data).hexdigest()
    assert m["window"] == {"start": "2025-01-15T00:00:00.000Z", "end": "2025-01-16T00:00:00.000Z"}
    assert m["object_key"] == "traces/2025-01-15.jsonl" and m["uri"].startswith("file://")
    assert m["query_seconds"] >= 0 and m["query_started_at"].endswith("Z")
    # the manifest is not where a `{table}/*.jsonl` glob looks
    assert sorted(p.name for p in (exporter.out / "traces").iterdir()) == ["2025-01-15.jsonl"]
    (mat,) = result.get_asset_materialization_events()
    md = mat.materialization.metadata
    assert md["rows"].value == 11 and md["bytes"].value == len(data) and md["tombstones"].value == 1
    assert md["uri"].value == m["uri"] and md["window_start"].value == "2025-01-15T00:00:00.000Z"


def test_value_formats(exporter: Exporter) -> None:
    insert(
        exporter.ch,
        "observations",
        [
            observation(
                "o",
                "t",
                "2025-01-15 10:00:00.5",
                input='{"messages": [1, 2]}',
                usage_details={"input": 10, "output": 18446744073709551615},
                cost_details={"input": 0.000123456789, "total": 12.5},
                total_cost=12.500123456789,
                metadata={"key.with.dots": 'quote"d', "ключ": "значение"},
                end_time=None,
                prompt_version=7,
            )
        ],
    )
    exporter.run("2025-01-15", tables=("observations",))
    raw = exporter.path("observations", "2025-01-15").read_bytes()
    (o,) = [json.loads(line) for line in raw.splitlines()]
    assert o["start_time"] == "2025-01-15T10:00:00.500Z"
    assert o["end_time"] is None
    assert o["input"] == '{"messages": [1, 2]}'  # kept as the stored string
    assert o["usage_details"] == {"input": 10, "output": 18446744073709551615}
    assert o["cost_details"] == {"input": 0.000123456789, "total": 12.5}
    assert o["total_cost"] == pytest.approx(12.500123456789, abs=1e-12)
    assert isinstance(o["total_cost"], float)
    assert o["metadata"] == {"key.with.dots": 'quote"d', "ключ": "значение"}
    assert o["prompt_version"] == 7 and o["is_deleted"] is False


def test_invalid_utf8_becomes_valid_utf8(exporter: Exporter) -> None:
    client = exporter.ch.get_client()
    insert(exporter.ch, "traces", [trace("bad", "2025-01-15 10:00")])
    # invalid bytes in a String, a map key and value, and a tags element
    client.command(
        f"INSERT INTO `{exporter.ch.database}`.traces SELECT * REPLACE("
        "unhex('68C3FFFE69') AS input, map(unhex('6BFF'), unhex('76FE')) AS metadata, [unhex('80')] AS tags, "
        "addMilliseconds(event_ts, 1) AS event_ts) "
        f"FROM `{exporter.ch.database}`.traces"
    )
    exporter.run("2025-01-15", tables=("traces",))
    raw = exporter.path("traces", "2025-01-15").read_bytes()
    raw.decode("utf-8")  # valid UTF-8, or this raises
    (line,) = [json.loads(x) for x in raw.splitlines()]
    assert line["input"] == "h\ufffdi" or line["input"].startswith("h\ufffd")
    assert line["metadata"] == {"k\ufffd": "v\ufffd"}
    assert line["tags"] == ["\ufffd"]
    # input, the map's key and value, one tag: four values rewritten, and said so
    assert exporter.manifest("traces", "2025-01-15")["invalid_utf8"] == 4


def test_failed_run_keeps_previous_file_and_leaves_nothing_partial(exporter: Exporter, monkeypatch: pytest.MonkeyPatch) -> None:
    insert(exporter.ch, "traces", [trace(f"t{i}", "2025-01-15 10:00") for i in range(50)])
    exporter.run("2025-01-15", tables=("traces",))
    good = exporter.path("traces", "2025-01-15").read_bytes()
    good_manifest = exporter.manifest("traces", "2025-01-15")
    insert(exporter.ch, "traces", [trace(f"n{i}", "2025-01-15 11:00") for i in range(50)])

    real_stream = ClickHouseResource.stream_arrow

    @contextmanager
    def dropping_stream(self, sql, parameters):
        with real_stream(self, sql, parameters) as batches:

            def gen():
                yield next(batches)
                raise ConnectionError("ClickHouse connection dropped mid-stream")

            yield gen()

    monkeypatch.setattr(ClickHouseResource, "stream_arrow", dropping_stream)
    with pytest.raises(Exception, match="connection dropped"):
        exporter.run("2025-01-15", tables=("traces",), batch_rows=10)
    assert exporter.path("traces", "2025-01-15").read_bytes() == good
    assert exporter.manifest("traces", "2025-01-15") == good_manifest
    staging = exporter.out / "_staging"
    assert not staging.exists() or list(staging.iterdir()) == []

    monkeypatch.setattr(ClickHouseResource, "stream_arrow", real_stream)
    exporter.run("2025-01-15", tables=("traces",), batch_rows=10)
    assert len(exporter.lines("traces", "2025-01-15")) == 100


def test_small_blocks_give_the_same_bytes(exporter: Exporter) -> None:
    insert(exporter.ch, "traces", [trace(f"t{i:03d}", f"2025-01-15 {i % 24:02d}:00", is_deleted=i % 7 == 0) for i in range(200)])
    exporter.run("2025-01-15", tables=("traces",))
    one_block = exporter.path("traces", "2025-01-15").read_bytes()
    exporter.run("2025-01-15", tables=("traces",), batch_rows=7)
    assert exporter.path("traces", "2025-01-15").read_bytes() == one_block


@pytest.mark.parametrize("compression,ext", [("gzip", ".jsonl.gz"), ("zstd", ".jsonl.zst")])
def test_compressed_output_holds_the_same_lines(exporter: Exporter, compression: str, ext: str) -> None:
    insert(exporter.ch, "traces", [trace(f"t{i}", "2025-01-15 10:00", input="x" * 1000) for i in range(100)])
    exporter.run("2025-01-15", tables=("traces",))
    plain = exporter.path("traces", "2025-01-15").read_bytes()
    exporter.run("2025-01-15", tables=("traces",), compression=compression)
    # the earlier uncompressed file of this partition is gone: one file per partition
    assert not exporter.path("traces", "2025-01-15").exists()
    compressed = exporter.path("traces", "2025-01-15", ext)
    assert read_bytes(compressed) == plain
    m = exporter.manifest("traces", "2025-01-15")
    assert m["bytes"] == compressed.stat().st_size < m["uncompressed_bytes"] == len(plain)
    assert m["sha256"] == hashlib.sha256(compressed.read_bytes()).hexdigest()
    first = compressed.read_bytes()
    exporter.run("2025-01-15", tables=("traces",), compression=compression)
    assert compressed.read_bytes() == first


def test_hourly_cadence_layout(exporter: Exporter) -> None:
    insert(exporter.ch, "traces", [trace("a", "2025-01-15 13:10"), trace("b", "2025-01-15 14:00")])
    exporter.run("2025-01-15-13:00", tables=("traces",), cadence="hourly")
    assert [t["id"] for t in exporter.lines("traces", "2025-01-15/13")] == ["a"]
    m = exporter.manifest("traces", "2025-01-15/13")
    assert m["window"] == {"start": "2025-01-15T13:00:00.000Z", "end": "2025-01-15T14:00:00.000Z"}


def test_export_inside_the_lag_warns_that_rows_may_be_in_flight(exporter: Exporter, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import datetime

    from dagster import DagsterInstance

    from xeroml_pipelines.defs.export import assets

    class FrozenClock(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2025, 1, 16, 0, 5, tzinfo=UTC)  # the 15th closed 5 minutes ago

    monkeypatch.setattr(assets, "datetime", FrozenClock)
    with DagsterInstance.ephemeral() as instance:
        result = exporter.run("2025-01-15", tables=("traces",), lag_minutes=20, instance=instance)
        messages = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any("in flight" in m and "2025-01-16 00:20" in m for m in messages)
    monkeypatch.setattr(assets, "datetime", datetime)
    with DagsterInstance.ephemeral() as instance:
        result = exporter.run("2025-01-15", tables=("traces",), lag_minutes=20, instance=instance)
        assert not any("in flight" in e.user_message for e in instance.all_logs(result.run_id))
